// Compute pipelines cached by shader variant (module name + entry point + constants), never by
// shape: shapes travel in uniforms, so one pipeline serves every batch size. The WGSL of a variant
// is generated in TypeScript (kernels/) when the planner asks for it; a module is compiled once per
// distinct text. Compilation runs inside validation error scopes; WGSL errors become
// SHADER_COMPILE errors naming the module and line.
import { CosfaceError } from '../../errors.js';

export interface ShaderSpec {
  /** The module's name, unique per WGSL text (e.g. 'matmul-subgroup-sg16-32x1'): it keys the module cache and prefixes compile errors. */
  name: string;
  code: string;
  entryPoint: string;
  constants?: Record<string, number>;
}

export class PipelineCache {
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private modules = new Map<string, Promise<GPUShaderModule>>();
  constructor(private readonly device: GPUDevice) {}

  static keyOf(spec: ShaderSpec): string {
    const c = spec.constants ? Object.entries(spec.constants).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',') : '';
    return `${spec.name}#${spec.entryPoint}{${c}}`;
  }

  get size(): number {
    return this.pipelines.size;
  }

  get(spec: ShaderSpec): Promise<GPUComputePipeline> {
    // The text is part of the key: two variants can never share a pipeline by a name clash.
    const key = `${PipelineCache.keyOf(spec)}\n${spec.code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.create(spec);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private module(spec: ShaderSpec): Promise<GPUShaderModule> {
    let m = this.modules.get(spec.code);
    if (!m) {
      m = this.compileModule(spec);
      this.modules.set(spec.code, m);
      m.catch(() => this.modules.delete(spec.code));
    }
    return m;
  }

  // Error scopes are a device-wide stack: two compilations awaiting at once would pop each
  // other's errors, so every push/pop pair runs alone, in this chain.
  private scopeChain: Promise<unknown> = Promise.resolve();

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.scopeChain.then(fn, fn);
    this.scopeChain = p.catch(() => undefined);
    return p;
  }

  private compileModule(spec: ShaderSpec): Promise<GPUShaderModule> {
    return this.exclusive(() => this.compileModuleNow(spec));
  }

  private async compileModuleNow(spec: ShaderSpec): Promise<GPUShaderModule> {
    const device = this.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: spec.code, label: spec.name });
    const info = await module.getCompilationInfo();
    const err = await device.popErrorScope();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0 || err) {
      const detail = errors.length
        ? errors.map((m) => `${spec.name}:${m.lineNum}:${m.linePos}: ${m.message}`).join('\n')
        : `${spec.name}: ${err!.message}`;
      throw new CosfaceError('SHADER_COMPILE', `WGSL shader ${spec.name} failed to compile:\n${detail}`);
    }
    return module;
  }

  private async create(spec: ShaderSpec): Promise<GPUComputePipeline> {
    const module = await this.module(spec);
    return this.exclusive(() => this.createNow(spec, module));
  }

  private async createNow(spec: ShaderSpec, module: GPUShaderModule): Promise<GPUComputePipeline> {
    const device = this.device;
    device.pushErrorScope('validation');
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await device.createComputePipelineAsync({
        label: PipelineCache.keyOf(spec),
        layout: 'auto',
        compute: { module, entryPoint: spec.entryPoint, constants: spec.constants },
      });
    } catch (e) {
      await device.popErrorScope();
      throw new CosfaceError('SHADER_COMPILE', `WGSL shader ${spec.name} (entry ${spec.entryPoint}): pipeline creation failed: ${(e as Error).message}`, { cause: e });
    }
    const err = await device.popErrorScope();
    if (err) throw new CosfaceError('SHADER_COMPILE', `WGSL shader ${spec.name} (entry ${spec.entryPoint}): ${err.message}`);
    return pipeline;
  }
}
