// Minimal ONNX model writer: just enough protobuf (varints, fixed32, length-delimited fields) to build the
// one-node peer models the CPU benchmark feeds to onnxruntime-node. No dependency on the onnx package.
//
// Field numbers are those of onnx/onnx.proto (proto2, stable since IR 3):
//   ModelProto          ir_version=1 producer_name=2 graph=7 opset_import=8
//   OperatorSetIdProto  domain=1 version=2
//   GraphProto          node=1 name=2 initializer=5 input=11 output=12
//   NodeProto           input=1 output=2 name=3 op_type=4 attribute=5 domain=7
//   AttributeProto      name=1 f=2 i=3 s=4 floats=7 ints=8 type=20 (FLOAT=1 INT=2 STRING=3 FLOATS=6 INTS=7)
//   TensorProto         dims=1 data_type=2 name=8 raw_data=9 (little-endian, row-major)
//   ValueInfoProto      name=1 type=2;  TypeProto tensor_type=1;  TypeProto.Tensor elem_type=1 shape=2
//   TensorShapeProto    dim=1;  Dimension dim_value=1 dim_param=2
'use strict';

/** TensorProto.DataType values used here. */
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, FLOAT8E4M3FN: 17 };

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function varint(v) {
  // int64 semantics: negatives take 10 bytes (two's complement), as protobuf requires
  let x = BigInt.asUintN(64, BigInt(v));
  const out = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Buffer.from(out);
}

const key = (field, wire) => varint((field << 3) | wire);

/** A message is a list of already-encoded fields; these helpers encode one field each. */
const F = {
  int(field, v) {
    return Buffer.concat([key(field, WIRE_VARINT), varint(v)]);
  },
  float(field, v) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v, 0);
    return Buffer.concat([key(field, WIRE_FIXED32), b]);
  },
  bytes(field, data) {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return Buffer.concat([key(field, WIRE_LEN), varint(b.length), b]);
  },
  string(field, s) {
    return F.bytes(field, Buffer.from(s, 'utf8'));
  },
  message(field, parts) {
    return F.bytes(field, Buffer.concat(parts));
  },
};

function attribute(name, value) {
  const parts = [F.string(1, name)];
  if (typeof value === 'string') {
    parts.push(F.string(4, value), F.int(20, 3));
  } else if (typeof value === 'number' && Number.isInteger(value)) {
    parts.push(F.int(3, value), F.int(20, 2));
  } else if (typeof value === 'number' || (value && typeof value.float === 'number')) {
    // { float: 1 } forces FLOAT for a whole-number value
    parts.push(F.float(2, typeof value === 'number' ? value : value.float), F.int(20, 1));
  } else if (Array.isArray(value) && value.every(Number.isInteger)) {
    for (const v of value) parts.push(F.int(8, v));
    parts.push(F.int(20, 7));
  } else if (Array.isArray(value)) {
    for (const v of value) parts.push(F.float(7, v));
    parts.push(F.int(20, 6));
  } else {
    throw new Error(`onnx attribute ${name}: unsupported value ${value}`);
  }
  return parts;
}

/** node('MatMul', ['A', 'B'], ['Y'], { attr: value }, domain) -> encoded NodeProto fields */
function node(opType, inputs, outputs, attrs = {}, domain = '', name = `${opType}_0`) {
  const parts = [];
  for (const i of inputs) parts.push(F.string(1, i)); // '' marks an omitted optional input
  for (const o of outputs) parts.push(F.string(2, o));
  parts.push(F.string(3, name), F.string(4, opType));
  for (const [k, v] of Object.entries(attrs)) parts.push(F.message(5, attribute(k, v)));
  if (domain) parts.push(F.string(7, domain));
  return parts;
}

/** Graph input/output: dims are numbers or strings (symbolic). */
function valueInfo(name, elemType, dims) {
  const shape = dims.map((d) => F.message(1, [typeof d === 'string' ? F.string(2, d) : F.int(1, d)]));
  const tensorType = [F.int(1, elemType), F.message(2, shape)];
  return [F.string(1, name), F.message(2, [F.message(1, tensorType)])];
}

/** Initializer with raw little-endian data (a typed array or Buffer). */
function tensor(name, dataType, dims, data) {
  const parts = dims.map((d) => F.int(1, d));
  parts.push(F.int(2, dataType), F.string(8, name), F.bytes(9, data));
  return parts;
}

/**
 * model({ nodes, inputs, outputs, initializers, opsets, irVersion }) -> Uint8Array of a ModelProto.
 * nodes/inputs/outputs/initializers are results of node()/valueInfo()/tensor().
 */
function model({ nodes, inputs, outputs, initializers = [], opsets = { '': 17, 'com.microsoft': 1 }, irVersion = 8, name = 'bench' }) {
  const graph = [];
  for (const n of nodes) graph.push(F.message(1, n));
  graph.push(F.string(2, name));
  for (const t of initializers) graph.push(F.message(5, t));
  for (const i of inputs) graph.push(F.message(11, i));
  for (const o of outputs) graph.push(F.message(12, o));
  const parts = [F.int(1, irVersion), F.string(2, 'tessera-benchmark')];
  for (const [domain, version] of Object.entries(opsets)) {
    parts.push(F.message(8, [...(domain ? [F.string(1, domain)] : []), F.int(2, version)]));
  }
  parts.push(F.message(7, graph));
  const b = Buffer.concat(parts);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

module.exports = { DT, node, valueInfo, tensor, model, varint };
