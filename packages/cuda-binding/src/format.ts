/** 1.5 GiB -> "1.50 GiB"; three or four significant digits, like the addon's messages. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value >= 100 ? value.toFixed(1) : value.toFixed(2)} ${units[unit]}`;
}

/** 13000 -> "13.0" (CUDA versions as the runtime reports them). */
export function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
