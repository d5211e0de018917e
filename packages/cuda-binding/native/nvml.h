// NVML, opened at run time (libnvidia-ml.so.1 ships with the driver), for the
// two things the runtime API cannot tell without creating a context on every
// device: free memory and the driver's release number. A probe must not cost
// each GPU of a shared server a context.
#pragma once

#include <cstdint>
#include <string>

namespace arkvale {

// Free and total bytes of the device with this PCI bus id ("0000:19:00.0");
// false when NVML is unavailable or does not know the device.
bool nvml_memory(const char* pci_bus_id, uint64_t* free_bytes, uint64_t* total_bytes);

// "580.65.06", or empty when NVML is unavailable.
std::string nvml_driver_release();

}  // namespace arkvale
