// add, affine, activation and pad, and l2normalize (WGSL in kernels/elementwise.ts).
import { numel, type ActivationNode, type AddNode, type AffineNode, type L2NormalizeNode, type PadNode } from '../../../graph/ir.js';
import { ELEMENTWISE_WGSL, L2NORMALIZE_WGSL } from '../kernels/elementwise.js';
import { ACT_CODE, grid1d, params, shader, type BindingRef, type KernelPlan } from './kernel.js';

function channels(shape: number[]): number {
  return shape[shape.length - 1] ?? 1;
}

export function planAdd(node: AddNode, shapes: Map<string, number[]>): KernelPlan {
  const shape = shapes.get(node.output)!;
  const per = numel(shape);
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'tensor', name: node.inputs[1]! },
    node.alpha ? { kind: 'const', data: node.alpha, label: `${node.name}/alpha` } : { kind: 'dummy' },
    { kind: 'tensor', name: node.output },
  ];
  return {
    node, shader: shader('elementwise', ELEMENTWISE_WGSL, 'add'), bindings,
    params: (n) => params([n * per, channels(shape), ACT_CODE[node.activation]]),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planAffine(node: AffineNode, shapes: Map<string, number[]>): KernelPlan {
  const shape = shapes.get(node.output)!;
  const per = numel(shape);
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'const', data: node.scale, label: `${node.name}/scale` },
    { kind: 'const', data: node.shift, label: `${node.name}/shift` },
    { kind: 'tensor', name: node.output },
  ];
  return {
    node, shader: shader('elementwise', ELEMENTWISE_WGSL, 'affine'), bindings,
    params: (n) => params([n * per, channels(shape)]),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planActivation(node: ActivationNode, shapes: Map<string, number[]>): KernelPlan {
  const shape = shapes.get(node.output)!;
  const per = numel(shape);
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    node.alpha ? { kind: 'const', data: node.alpha, label: `${node.name}/alpha` } : { kind: 'dummy' },
    { kind: 'unused' },
    { kind: 'tensor', name: node.output },
  ];
  return {
    node, shader: shader('elementwise', ELEMENTWISE_WGSL, 'activation'), bindings,
    params: (n) => params([n * per, channels(shape), ACT_CODE[node.activation]]),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planPad(node: PadNode, shapes: Map<string, number[]>): KernelPlan {
  const [H, W, C] = shapes.get(node.inputs[0]!)! as [number, number, number];
  const [OH, OW] = shapes.get(node.output)! as [number, number, number];
  const per = OH * OW * C;
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'unused' },
    { kind: 'unused' },
    { kind: 'tensor', name: node.output },
  ];
  return {
    node, shader: shader('elementwise', ELEMENTWISE_WGSL, 'pad'), bindings,
    params: (n) => params([n * per, C, 0, H, W, OH, OW, node.pads.top, node.pads.left]),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planL2Normalize(node: L2NormalizeNode, shapes: Map<string, number[]>): KernelPlan {
  const F = numel(shapes.get(node.output)!);
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'tensor', name: node.output },
  ];
  return {
    node, shader: shader('l2normalize', L2NORMALIZE_WGSL), bindings,
    params: (n) => params([F, n]),
    dispatch: (n) => grid1d(n),
  };
}
