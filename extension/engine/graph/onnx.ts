/**
 * Emits a Graph as an ONNX ModelProto (opset 18). The protobuf schema below is the subset of ONNX's
 * onnx.proto that a model needs, with ONNX's own field numbers; protobufjs does the encoding.
 */
import * as protobuf from 'protobufjs';
import { ONNX_DTYPE_CODE } from './dtype';
import { AttrValue, ConstantData, Graph, Tensor } from './graph';

export const OPSET = 18;
const IR_VERSION = 8;

const SCHEMA = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  optional int32 type = 20;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string domain = 7;
}
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}
message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
}
message TensorShapeProto {
  message Dimension {
    optional int64 dim_value = 1;
    optional string dim_param = 2;
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  optional Tensor tensor_type = 1;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
}
`;

const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, ints: 7 } as const;

let modelType: protobuf.Type | undefined;
function modelProtoType(): protobuf.Type {
  if (!modelType) modelType = protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelType;
}

function bytesOf(data: ConstantData['data']): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, c: ConstantData): object {
  return { name, dims: c.shape, data_type: ONNX_DTYPE_CODE[c.dtype], raw_data: bytesOf(c.data) };
}

function valueInfo(name: string, t: Tensor): object {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: ONNX_DTYPE_CODE[t.dtype],
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function attribute(name: string, a: AttrValue): object {
  switch (a.kind) {
    case 'int':
      return { name, type: ATTR_TYPE.int, i: a.value };
    case 'float':
      return { name, type: ATTR_TYPE.float, f: a.value };
    case 'ints':
      return { name, type: ATTR_TYPE.ints, ints: a.value };
    case 'string':
      return { name, type: ATTR_TYPE.string, s: Buffer.from(a.value, 'utf8') };
    case 'tensor':
      return { name, type: ATTR_TYPE.tensor, t: tensorProto('', a.value) };
  }
}

export interface EmitOptions {
  /**
   * Initializers at least this large (bytes) are written to one external data file instead of into the
   * protobuf, which is limited to 2 GiB. The caller writes `externalData` next to the model file.
   */
  externalThreshold?: number;
  externalFileName?: string;
}

export interface EmittedModel {
  model: Uint8Array;
  /** Chunks of the external data file, in order, when any initializer went there. */
  externalData: Uint8Array[];
}

export function emitOnnx(graph: Graph, options: EmitOptions = {}): EmittedModel {
  const threshold = options.externalThreshold ?? Infinity;
  const externalFile = options.externalFileName ?? 'weights.bin';
  const externalData: Uint8Array[] = [];
  let externalOffset = 0;

  const initializers: object[] = [];
  for (const [t, c] of graph.initializers) {
    if (c.data.byteLength >= threshold) {
      // Page-aligned offsets let ONNX Runtime memory-map the file.
      const pad = (4096 - (externalOffset % 4096)) % 4096;
      if (pad) externalData.push(new Uint8Array(pad));
      externalOffset += pad;
      externalData.push(bytesOf(c.data));
      initializers.push({
        name: t.name,
        dims: c.shape,
        data_type: ONNX_DTYPE_CODE[c.dtype],
        data_location: 1,
        external_data: [
          { key: 'location', value: externalFile },
          { key: 'offset', value: String(externalOffset) },
          { key: 'length', value: String(c.data.byteLength) },
        ],
      });
      externalOffset += c.data.byteLength;
    } else {
      initializers.push(tensorProto(t.name, c));
    }
  }

  const name = (t: Tensor | null) => (t ? t.name : '');
  const nodes: object[] = graph.nodes.map((n, i) => ({
    name: `${n.op}_${i}`,
    op_type: n.op,
    domain: n.domain,
    input: n.inputs.map(name),
    output: n.outputs.map(name),
    attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
  }));
  const outputs: object[] = [];
  for (const [outName, t] of graph.outputs) {
    if (t.name !== outName) nodes.push({ name: `out_${outName}`, op_type: 'Identity', input: [t.name], output: [outName] });
    outputs.push(valueInfo(outName, t));
  }

  const message = {
    ir_version: IR_VERSION,
    producer_name: 'absp-lab',
    producer_version: '0.1',
    opset_import: [{ domain: '', version: OPSET }],
    graph: {
      name: graph.name,
      node: nodes,
      initializer: initializers,
      input: graph.inputs.map((t) => valueInfo(t.name, t)),
      output: outputs,
    },
  };
  const type = modelProtoType();
  const model = type.encode(type.fromObject(message)).finish();
  return { model, externalData };
}
