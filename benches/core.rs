//! Micro-benchmarks below the whole system (divan): the record ring alone over heap memory,
//! the wire codec, the table, the store and a lane serving reads on one thread. Run with
//! `cargo bench --bench core`.

#[cfg(not(loom))]
fn main() {
    divan::main();
}

#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod benches {
    use divan::{Bencher, black_box};
    use shmkv::record::{HeapRecordMem, record_channel};
    use shmkv::store::Store;
    use shmkv::sync::Arc;
    use shmkv::table::Table;
    use shmkv::wire::{
        Limits, Op, Reply, Request, Response, decode_request, decode_response, encode_request,
        encode_response,
    };

    /// The server's default limits (4 KiB keys, 1 MiB values).
    const LIMITS: Limits = Limits {
        max_key: 4096,
        max_value: 1 << 20,
    };

    /// Key and value sizes of the codec benchmarks: a small field and a 1 KiB one.
    const SIZES: [usize; 2] = [8, 1024];

    /// A small record: a request with a key of a few bytes (24 bytes in the ring with its
    /// header).
    const SMALL: [u8; 16] = [7; 16];

    /// One small record pushed and popped on one thread (no contention): the ring's own cost.
    #[divan::bench]
    fn record_push_pop(b: Bencher) {
        let (mut p, mut c) = record_channel(Arc::new(HeapRecordMem::new(4096))).unwrap();
        let mut buf = Vec::with_capacity(64);
        b.bench_local(|| {
            p.try_push(black_box(&SMALL)).unwrap();
            black_box(c.try_pop_into(&mut buf).unwrap());
        });
    }

    /// 64 small records written and published once, then read and released once.
    #[divan::bench]
    fn record_batch_of_64(b: Bencher) {
        let (mut p, mut c) = record_channel(Arc::new(HeapRecordMem::new(4096))).unwrap();
        let mut buf = Vec::with_capacity(64);
        b.counter(divan::counter::ItemsCount::new(64usize))
            .bench_local(|| {
                for _ in 0..64 {
                    p.write(black_box(&SMALL)).unwrap();
                }
                p.publish();
                for _ in 0..64 {
                    black_box(c.read_into(&mut buf).unwrap());
                }
                c.release();
            });
    }

    /// One record of `len` bytes (a request or answer carrying a 1 KiB field) through the ring.
    #[divan::bench(args = SIZES)]
    fn record_push_pop_sized(b: Bencher, len: usize) {
        let (mut p, mut c) = record_channel(Arc::new(HeapRecordMem::new(1 << 16))).unwrap();
        let payload = vec![7u8; len];
        let mut buf = Vec::with_capacity(len);
        b.counter(divan::counter::BytesCount::new(len))
            .bench_local(|| {
                p.try_push(black_box(&payload)).unwrap();
                black_box(c.try_pop_into(&mut buf).unwrap());
            });
    }

    fn read_request(key_len: usize) -> Request {
        Request {
            id: 42,
            op: Op::Read {
                key: vec![b'k'; key_len],
            },
        }
    }

    fn value_reply(value_len: usize) -> Response {
        Response {
            id: 42,
            reply: Reply::Value(vec![b'v'; value_len]),
        }
    }

    /// Encoding a Read of a `len`-byte key into a reused buffer.
    #[divan::bench(args = SIZES)]
    fn wire_encode_read_request(b: Bencher, len: usize) {
        let r = read_request(len);
        let mut buf = Vec::new();
        b.bench_local(|| {
            buf.clear();
            encode_request(black_box(&r), &mut buf);
            black_box(buf.len())
        });
    }

    /// Decoding a Read of a `len`-byte key (the key is copied out).
    #[divan::bench(args = SIZES)]
    fn wire_decode_read_request(b: Bencher, len: usize) {
        let mut bytes = Vec::new();
        encode_request(&read_request(len), &mut bytes);
        b.bench_local(|| decode_request(black_box(&bytes), &LIMITS).unwrap());
    }

    /// Encoding a Value reply of `len` bytes into a reused buffer.
    #[divan::bench(args = SIZES)]
    fn wire_encode_value_reply(b: Bencher, len: usize) {
        let r = value_reply(len);
        let mut buf = Vec::new();
        b.bench_local(|| {
            buf.clear();
            encode_response(black_box(&r), &mut buf);
            black_box(buf.len())
        });
    }

    /// Decoding a Value reply of `len` bytes (the value is copied out).
    #[divan::bench(args = SIZES)]
    fn wire_decode_value_reply(b: Bencher, len: usize) {
        let mut bytes = Vec::new();
        encode_response(&value_reply(len), &mut bytes);
        b.bench_local(|| decode_response(black_box(&bytes), &LIMITS).unwrap());
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

    /// A 100,000-entry store with 65,536 buckets, 16-byte keys and 16-byte values.
    fn store() -> Store {
        let s = Store::new(65_536, u64::MAX).unwrap();
        for k in 0..100_000u64 {
            s.write(&key(k)).insert(&[b'v'; 16]).unwrap();
        }
        s
    }

    fn key(k: u64) -> [u8; 16] {
        let mut b = [b'k'; 16];
        b[8..].copy_from_slice(&k.to_le_bytes());
        b
    }

    /// Reads of present 16-byte keys in the store (the value is borrowed under the bucket
    /// lock, not copied).
    #[divan::bench]
    fn store_read(b: Bencher) {
        let s = store();
        let mut k = 0u64;
        b.bench_local(|| {
            k = (k + 7919) % 100_000;
            black_box(s.read(&key(k)).get().map(<[u8]>::len))
        });
    }

    /// Overwrites of present keys with a 16-byte value (an allocation per entry replaced).
    #[divan::bench]
    fn store_insert(b: Bencher) {
        let s = store();
        let mut k = 0u64;
        b.bench_local(|| {
            k = (k + 7919) % 100_000;
            black_box(s.write(&key(k)).insert(&[b'w'; 16]).unwrap())
        });
    }

    /// Creates: 10,000 new 16-byte keys with 8-byte values inserted into an empty store of
    /// 5,000 buckets (the tables grow as they fill), per sample.
    #[divan::bench]
    fn store_create_10k(b: Bencher) {
        b.with_inputs(|| Store::new(5_000, u64::MAX).unwrap())
            .bench_local_values(|s| {
                for k in 0..10_000u64 {
                    black_box(
                        s.write(&key(k.wrapping_mul(7919)))
                            .insert(&[b'v'; 8])
                            .unwrap(),
                    );
                }
                s
            });
    }

    /// A served lane's whole request path on one thread, without the other process: 64 read
    /// requests of present 8-byte keys (8-byte values, 100,000 entries in 5,000 buckets, as
    /// `shmkv-bench` runs) written to the request ring, served by `Lane::serve_one` (one
    /// worker that keeps the ring, as on two cores), and their answers read back. What a
    /// server worker spends per request when nothing waits on another core.
    #[divan::bench]
    fn lane_serve_64_reads(b: Bencher) {
        lane_serve_reads(b, 100_000);
    }

    /// [`lane_serve_64_reads`] over 5,000 entries, whose table stays in the core's caches:
    /// the difference is what the table's cache misses cost a request.
    #[divan::bench]
    fn lane_serve_64_reads_cached(b: Bencher) {
        lane_serve_reads(b, 5_000);
    }

    /// [`lane_serve_64_reads`] with inserts that overwrite present keys with a value as long
    /// (as the pipelined insert routine of `shmkv-bench` does after the synchronous one).
    #[divan::bench]
    fn lane_serve_64_overwrites(b: Bencher) {
        lane_serve(b, 100_000, true);
    }

    fn lane_serve_reads(b: Bencher, keys: u64) {
        lane_serve(b, keys, false);
    }

    /// 64 requests at a time through a lane: reads, or overwrites when `write`.
    fn lane_serve(b: Bencher, keys: u64, write: bool) {
        use shmkv::record::{RecordConsumer, RecordProducer};
        use shmkv::serve::{Control, Lane, Scratch};
        struct Quiet;
        impl Control for Quiet {
            fn start_workers(&self, _n: u32) -> u32 {
                0
            }
            fn request_quit(&self) {}
            fn stopping(&self) -> bool {
                false
            }
            fn cancel_wait(&self) -> bool {
                false
            }
            fn peer_gone(&self) -> bool {
                false
            }
        }
        let req = Arc::new(HeapRecordMem::new(1 << 16));
        let resp = Arc::new(HeapRecordMem::new(1 << 16));
        let mut lane = Lane::new(req.clone(), resp.clone(), LIMITS, 1, 1).unwrap();
        lane.set_share_backlog(false);
        let mut p = RecordProducer::new(req).unwrap();
        let mut c = RecordConsumer::new(resp).unwrap();
        let store = Store::new(5000, u64::MAX).unwrap();
        for k in 0..keys {
            store
                .write(&k.to_le_bytes())
                .insert(&k.to_le_bytes())
                .unwrap();
        }
        let mut k = 0u64;
        let mut id = 0u64;
        let mut buf = Vec::new();
        let mut scratch = Scratch::default();
        b.counter(divan::counter::ItemsCount::new(64usize))
            .bench_local(|| {
                for _ in 0..64 {
                    k = (k + 7919) % keys;
                    id += 1;
                    buf.clear();
                    let key = k.to_le_bytes().to_vec();
                    let op = if write {
                        Op::Insert {
                            key,
                            value: (k + id).to_le_bytes().to_vec(),
                        }
                    } else {
                        Op::Read { key }
                    };
                    encode_request(&Request { id, op }, &mut buf);
                    p.write(&buf).unwrap();
                }
                p.publish();
                let mut answered = 0;
                while answered < 64 {
                    lane.serve_one(&store, &Quiet, None, &mut scratch);
                    while c.read_into(&mut buf).is_ok() {
                        answered += 1;
                    }
                }
                c.release();
            });
    }
}
