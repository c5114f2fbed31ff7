/**
 * The cuda backend's DeviceTimer (lib/profile/profiler.ts): CUDA events recorded on the backend's one
 * stream (cuda/events.cu). mark() queues an event behind everything already queued and returns at once,
 * so profiling does not synchronize the device per kernel: the time between the events around a launch is
 * the device time of the work queued between them. The start mark (markStart, eventRecordDeferred) is
 * recorded when the op queues its first work, so the host's preparation before that is not counted even
 * when the device idles; what remains of the host's launch latency is the launch call itself.
 * elapsedNs() waits for the later event; it is called only when the profiling session stops.
 * Registered for 'cuda' by register.ts when the addon exports the event functions; records of cuda
 * kernels then carry timing 'device' and sit on the trace's `device: cuda (device timer)` track.
 */
import type { DeviceTimer } from '../../profile/profiler';
import { CudaBinding, CudaEvent } from './native';

export interface CudaEventTimer extends DeviceTimer {
  mark(): CudaEvent;
  elapsedNs(a: unknown, b: unknown): number;
  synchronize(): void;
  release(marks: unknown[]): void;
}

/** A DeviceTimer over the addon's events, or null when the addon lacks them (an older build). */
export function createCudaEventTimer(cb: CudaBinding): CudaEventTimer | null {
  const { eventRecord, eventElapsedNs, eventRelease } = cb;
  if (typeof eventRecord !== 'function' || typeof eventElapsedNs !== 'function' || typeof eventRelease !== 'function') {
    return null;
  }
  return {
    mark: () => eventRecord.call(cb),
    // the start mark lands right before the op's first launch or copy: host work an op does first (argument
    // checks, output allocation, tables) is not counted while the device idles
    ...(typeof cb.eventRecordDeferred === 'function' ? { markStart: () => cb.eventRecordDeferred!.call(cb) } : {}),
    elapsedNs: (a, b) => eventElapsedNs.call(cb, a as CudaEvent, b as CudaEvent),
    synchronize: () => cb.synchronize(),
    release(marks) {
      for (const m of marks) {
        if (m !== undefined && m !== null) eventRelease.call(cb, m as CudaEvent);
      }
    },
  };
}
