/**
 * The cuda backend's DeviceTimer (lib/profile/profiler.ts): CUDA events recorded on the backend's one
 * stream (cuda/events.cu). mark() queues an event behind everything already queued and returns at once,
 * so profiling does not synchronize the device per kernel: the time between the events around a launch is
 * the device time of the work queued between them. (When the device is idle at the first mark, it also
 * holds the host's launch latency; when the stream is busy, as in any real pipeline, it does not.)
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
    elapsedNs: (a, b) => eventElapsedNs.call(cb, a as CudaEvent, b as CudaEvent),
    synchronize: () => cb.synchronize(),
    release(marks) {
      for (const m of marks) {
        if (m !== undefined && m !== null) eventRelease.call(cb, m as CudaEvent);
      }
    },
  };
}
