/**
 * TesseraError: every user-facing failure (bad argument, wrong shape or dtype, disposed tensor, backend
 * problem) is one of these, with a stable `code` for programs and a message naming the op and argument.
 */
export type ErrorCode =
  | 'E_TYPE' // a JS value of the wrong kind (null, string, plain object where a Tensor belongs)
  | 'E_SHAPE' // shapes that do not fit together, or an invalid shape
  | 'E_DTYPE' // unsupported dtype or dtype mismatch
  | 'E_ARG' // an out-of-range or otherwise invalid option/argument value
  | 'E_DISPOSED' // use of a tensor after dispose()
  | 'E_DETACHED' // a typed array whose ArrayBuffer was detached (transferred)
  | 'E_DEVICE' // tensors on different devices, or a device that is not available
  | 'E_BACKEND' // a backend is unavailable or cannot run this op
  | 'E_OOM' // device memory exhausted
  | 'E_NATIVE' // the native addon reported a failure
  | 'E_IO'; // file-level problems (missing/truncated files)

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly op: string;
  constructor(code: ErrorCode, op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'TesseraError';
    this.code = code;
    this.op = op;
  }
}

/** Short human description of a JS value for error messages (never throws). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 20 ? v.slice(0, 20) + '…' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `array(length ${v.length})`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(length ${(v as unknown as { length?: number }).length ?? v.byteLength})`;
  if (typeof v === 'function') return 'function';
  const ctor = (v as object).constructor;
  return ctor && ctor.name && ctor.name !== 'Object' ? `${ctor.name} object` : 'plain object';
}
