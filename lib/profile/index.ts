/**
 * Profiling kernels from Node: profile(fn) / startProfiling() + stopProfiling() give a ProfileReport with
 * one record per kernel call (op, backend, variant, shapes, dtypes, times, FLOPs, bytes), a key-averages
 * table, a Chrome trace and a roofline picture against this machine's calibrate()d peaks.
 */
import { closeSession, lastSession, openSession } from './profiler';
import { ProfileReport, endSession } from './report';

/** Starts recording every kernel call (sessions nest: each stopProfiling() ends the latest one). */
export function startProfiling(): void {
  openSession();
}

/** Ends the latest profiling session and returns its report. */
export function stopProfiling(): ProfileReport {
  return endSession(lastSession('stopProfiling'));
}

/**
 * Runs fn (sync or async) with profiling on and returns the report of the kernels it ran, including
 * async kernels it awaited. If fn throws, profiling stops and the error propagates.
 */
export async function profile(fn: () => unknown): Promise<ProfileReport> {
  const s = openSession();
  try {
    await fn();
  } catch (e) {
    closeSession(s);
    throw e;
  }
  return endSession(s);
}

export { isProfiling, setDeviceTimer } from './profiler';
export type { DeviceTimer, Timing } from './profiler';
export { ProfileReport } from './report';
export type { ProfileRecord, GroupStats, GroupBy, SortBy, TableOptions } from './report';
export { calibrate, cachedCalibration, calibrationCachePath } from './calibrate';
export type { Calibration, CalibrateOptions, PeakEntry } from './calibrate';
export { machinePeak, memoryBandwidth } from './peak';
export type { MachinePeak, MachinePeakOptions, PeakRate, MemoryBandwidth, MemoryBandwidthOptions } from './peak';
export { COST as FLOP_COSTS, opCost, attentionPairs } from './cost';
export type { Cost, CostInput, TensorMeta } from './cost';
export type { ChromeTrace, TraceEvent } from './trace';
export type { RooflineOptions } from './svg';
