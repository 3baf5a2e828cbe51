//! Micro-benchmarks below the whole system (divan): the ring alone over heap memory, the
//! codec, and the table. Run with `cargo bench --bench core`.

#[cfg(not(loom))]
fn main() {
    divan::main();
}

#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod benches {
    use divan::{Bencher, black_box};
    use shmkv::protocol::{
        Op, Reply, Request, Response, decode_request, decode_response, encode_request,
        encode_response,
    };
    use shmkv::region::{HeapRingMem, SLOT_SIZE};
    use shmkv::ring;
    use shmkv::sync::Arc;
    use shmkv::table::Table;

    /// One slot pushed and popped on one thread (no contention): the ring's own cost.
    #[divan::bench]
    fn ring_push_pop(b: Bencher) {
        let (mut p, mut c) = ring::channel(Arc::new(HeapRingMem::new(1024)));
        let slot = [7u8; SLOT_SIZE];
        b.bench_local(|| {
            p.try_push(black_box(&slot)).unwrap();
            black_box(c.try_pop().unwrap());
        });
    }

    /// 64 slots written and published once, then read and released once.
    #[divan::bench]
    fn ring_batch_of_64(b: Bencher) {
        let (mut p, mut c) = ring::channel(Arc::new(HeapRingMem::new(1024)));
        let slot = [7u8; SLOT_SIZE];
        b.counter(divan::counter::ItemsCount::new(64usize))
            .bench_local(|| {
                for _ in 0..64 {
                    p.write(black_box(&slot)).unwrap();
                }
                p.publish();
                for _ in 0..64 {
                    black_box(c.read().unwrap());
                }
                c.release();
            });
    }

    #[divan::bench]
    fn codec_request_round_trip() -> Option<Request> {
        let r = Request {
            id: black_box(42),
            op: Op::Insert {
                key: black_box(1),
                value: black_box(2),
            },
        };
        decode_request(&encode_request(&r)).ok()
    }

    #[divan::bench]
    fn codec_response_round_trip() -> Option<Response> {
        let r = Response {
            id: black_box(42),
            reply: Reply::Value(black_box(9)),
        };
        decode_response(&encode_response(&r)).ok()
    }

    /// Reads of present keys in a 100,000-entry table with 65,536 buckets.
    #[divan::bench]
    fn table_get(b: Bencher) {
        let t: Table<u64, u64> = Table::new(65_536).unwrap();
        for k in 0..100_000u64 {
            t.insert(k, k);
        }
        let mut k = 0u64;
        b.bench_local(|| {
            k = (k + 7919) % 100_000;
            black_box(t.get(&k))
        });
    }

    /// Overwrites of present keys.
    #[divan::bench]
    fn table_insert(b: Bencher) {
        let t: Table<u64, u64> = Table::new(65_536).unwrap();
        for k in 0..100_000u64 {
            t.insert(k, k);
        }
        let mut k = 0u64;
        b.bench_local(|| {
            k = (k + 7919) % 100_000;
            black_box(t.insert(k, k))
        });
    }
}
