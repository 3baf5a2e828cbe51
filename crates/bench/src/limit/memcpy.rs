//! The memcpy baseline: copies of each value size between two buffers larger than the caches.

use super::{CopyRate, warmup};
use std::time::{Duration, Instant};

/// Bytes of each memcpy buffer: more than the caches hold.
const ARENA: usize = 64 << 20;

/// memcpy (`copy_from_slice`) of each size in `sizes`, single-threaded, `secs` each after a
/// warm-up: consecutive `size`-byte pieces of one 64 MiB buffer into another, wrapping.
pub(super) fn memcpy_rates(sizes: &[usize], secs: f64) -> Vec<CopyRate> {
    use std::hint::black_box;
    let arena_of = |s: usize| {
        if s >= ARENA {
            s
        } else {
            ARENA / s.max(1) * s.max(1)
        }
    };
    let biggest = sizes.iter().map(|&s| arena_of(s)).max().unwrap_or(0);
    // Filled (not zeroed), so that every page is faulted in before any timing.
    let src = vec![0x5Au8; biggest];
    let mut dst = vec![0xA5u8; biggest];
    let mut out = Vec::new();
    for &size in sizes {
        let size = size.max(1);
        let chunks = arena_of(size) / size;
        // Copies between clock reads: about 1 MiB of them.
        let batch = ((1 << 20) / size).clamp(1, chunks);
        let start = Instant::now();
        let warm_end = start + warmup(secs);
        let end = warm_end + Duration::from_secs_f64(secs);
        let (mut c, mut copies, mut t0, mut measuring) = (0usize, 0u64, start, false);
        loop {
            for _ in 0..batch {
                let off = c * size;
                dst[off..off + size].copy_from_slice(black_box(&src[off..off + size]));
                black_box(&mut dst[off..off + size]);
                c += 1;
                if c == chunks {
                    c = 0;
                }
            }
            copies += batch as u64;
            let now = Instant::now();
            if !measuring && now >= warm_end {
                measuring = true;
                copies = 0;
                t0 = now;
            } else if measuring && now >= end {
                out.push(CopyRate {
                    size,
                    bytes: copies * size as u64,
                    seconds: now.duration_since(t0).as_secs_f64(),
                });
                break;
            }
        }
    }
    out
}
