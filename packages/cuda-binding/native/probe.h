// What this machine offers: driver, runtime and devices. Never throws: every
// failure becomes `reason`, worded for a user ("no NVIDIA driver found").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace arkvale {

struct DeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  int major = 0;
  int minor = 0;
  int multiprocessors = 0;
  int l2_bytes = 0;
  int max_shared_per_block_optin = 0;
  std::string pci_bus_id;
};

struct ProbeResult {
  bool ok = false;
  std::string reason;
  int driver_version = 0;   // CUDA API version the driver supports (13000 = 13.0), 0 without a driver
  int runtime_version = 0;  // the CUDA runtime linked into the addon
  std::string driver_release;  // "580.65.06" when NVML answers
  std::vector<DeviceInfo> devices;
};

ProbeResult probe();

}  // namespace arkvale
