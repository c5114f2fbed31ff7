/** Model families, loading and generation (re-exports only). */
export { loadModel, Model } from './loader';
export type { LoadOptions, QuantizeMode } from './loader';
export { KVCache } from './kvcache';
export { registerArchitecture, supportedArchitectures } from './architectures';
export type { Architecture, Decoder, WeightSpec, WeightRole } from './architectures';
export { llamaFamily, LlamaDecoder } from './llama';
export { parseConfig, ropeInvFreqFor } from './config';
export type { ModelConfig, RopeConfig, GenerationDefaults } from './config';
export { sample, IncrementalDecoder, StopFilter } from './generate';
export type { GenerateOptions, GenerateResult, GenerateStats, GenerationStream, StreamPiece, FinishReason } from './generate';
