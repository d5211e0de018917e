/** The shape of a generated family module, for the launch-surface test's dynamic import. */
export interface DecodeLaunch {
  readonly name: string;
  grid(args: object): readonly number[];
  pack(args: object): Uint8Array;
}
export declare function findPagedDecode(spec: object): DecodeLaunch | undefined;
