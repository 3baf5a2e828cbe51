//! The hostile client: the ways it misbehaves, the lies it tells in its request ring, the
//! resize attempts and punched holes, a record ring written by hand, and the role itself.

use super::{Rng, say};
use shmkv::channel::{DATA, MAGIC, REQ_CTRL, RESP_CTRL};
use shmkv::client::{Client, ClientConfig};
use shmkv::record::{KIND_DATA, KIND_PADDING, max_payload, record_size};
use shmkv::shm::Mapping;
use shmkv::wait::{SysFutex, Wake};
use shmkv::wire::{Op, Request, encode_request};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How a hostile client misbehaves, always in its own session object (the descriptor it was
/// handed, mapped a second time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// Arbitrary values at arbitrary places: header, counters, futex words, record headers
    /// and payloads in both rings.
    Random,
    /// Records whose header lies (a length past the ring's maximum or past the published
    /// bytes, a padding record that does not end at the end of the data area, an unknown
    /// kind) or counters that do (a misaligned tail, a tail more than the capacity ahead),
    /// published and the server woken: lie number `seed % 6` of [`LIES`], told once (so that
    /// the server finds that very lie), then the server woken again and again.
    Lying,
    /// A futex storm that changes the words: bump (fetch_add) the request ring's data futex and
    /// the response ring's space futex, then FUTEX_WAKE them, as fast as it can.
    Futex,
    /// A futex storm that leaves the words alone: FUTEX_WAKE only, on the same two words.
    WakeOnly,
    /// Keep the request ring full of valid requests, never read a response (so that the
    /// server fills the response ring and waits for room with requests still waiting), and
    /// keep waking the server's wait for room to answer (changing the word or not).
    Full,
    /// Well-formed records of garbage as fast as the server takes them, responses "read" by
    /// moving the response ring's head.
    Flood,
    /// Flip the header's session state word and magic, and wake the server.
    State,
    /// Queue valid requests, then punch a hole over the whole object (`fallocate` PUNCH_HOLE,
    /// which zeroes every page: header, ring counters, records), over and over.
    Punch,
    /// Try to resize the object every way there is (truncate to 0 and to a page, grow to
    /// 512 MiB with `ftruncate`, `fallocate` and a write past the end, change the seals): each
    /// must fail with EPERM (else `ERR`, status 1). Meanwhile it uses its session normally,
    /// which must keep working (else `ERR`, status 3).
    Resize,
}

impl Hostility {
    pub const ALL: [Hostility; 9] = [
        Hostility::Random,
        Hostility::Lying,
        Hostility::Futex,
        Hostility::WakeOnly,
        Hostility::Full,
        Hostility::Flood,
        Hostility::State,
        Hostility::Punch,
        Hostility::Resize,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hostility::Random => "random",
            Hostility::Lying => "lying",
            Hostility::Futex => "futex",
            Hostility::WakeOnly => "wake-only",
            Hostility::Full => "full",
            Hostility::Flood => "flood",
            Hostility::State => "state",
            Hostility::Punch => "punch",
            Hostility::Resize => "resize",
        }
    }

    pub fn parse(s: &str) -> Option<Hostility> {
        Hostility::ALL.into_iter().find(|h| h.name() == s)
    }

    /// Whether the server must drop a client doing this (it makes the server work for
    /// nothing, or breaks its rings). The others are refused by the kernel and harm nobody.
    pub fn must_be_dropped(self) -> bool {
        self != Hostility::Resize
    }
}

/// What the server says of each lie of [`Hostility::Lying`] (in the order it tells them) when
/// it finds it in the request ring.
pub const LIES: [&str; 6] = [
    "a record longer than the maximum",
    "a record crossing the end of the data area or the published bytes",
    "a padding record at offset 0, not ending at the end of the data area, or not published",
    "a record of unknown kind",
    "the producer's tail is misaligned, went back, or ran past the capacity",
    "the producer's tail is misaligned, went back, or ran past the capacity",
];

/// Offsets of one ring control block's words.
const TAIL: usize = 0;
const HEAD: usize = 64;
const DATA_FUTEX: usize = 132;
const SPACE_FUTEX: usize = 140;
/// The header's session state word (1 running, 2 stopping, 3 dropped).
const STATE: usize = 44;
/// The largest size a resize attempt asks for.
pub const GROW_TO: i64 = 512 << 20;

/// Every way to resize the sealed object behind `fd` (of `len` bytes): each must fail with
/// EPERM. Returns what did not.
pub fn resize_attempts(fd: std::os::fd::BorrowedFd<'_>, len: i64) -> Vec<String> {
    use nix::errno::Errno;
    use nix::fcntl::{FallocateFlags, FcntlArg, SealFlag, fcntl};
    let raw = fd.as_raw_fd();
    let reopened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{raw}"));
    let mut attempts: Vec<(String, Result<(), Errno>)> = [0, 4096, GROW_TO]
        .into_iter()
        .map(|size| {
            (
                format!("ftruncate to {size}"),
                nix::unistd::ftruncate(fd, size),
            )
        })
        .collect();
    attempts.extend([
        (
            "fallocate to 512 MiB".to_string(),
            nix::fcntl::fallocate(raw, FallocateFlags::empty(), 0, GROW_TO),
        ),
        (
            "fallocate past the end".to_string(),
            nix::fcntl::fallocate(raw, FallocateFlags::empty(), len, 4096),
        ),
        (
            "a write past the end".to_string(),
            nix::sys::uio::pwrite(fd, b"x", len).map(drop),
        ),
        (
            "adding a write seal".to_string(),
            fcntl(raw, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE)).map(drop),
        ),
        // A new open file description of the same object (through /proc) changes nothing.
        (
            "ftruncate through a descriptor reopened from /proc".to_string(),
            match &reopened {
                Ok(f) => nix::unistd::ftruncate(f, 0),
                Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            },
        ),
    ]);
    let mut wrong: Vec<String> = attempts
        .into_iter()
        .filter(|(_, r)| *r != Err(Errno::EPERM))
        .map(|(what, r)| format!("{what}: {r:?}, expected EPERM"))
        .collect();
    match nix::sys::stat::fstat(raw) {
        Ok(st) if st.st_size == len => {}
        Ok(st) => wrong.push(format!("the size is now {}, was {len}", st.st_size)),
        Err(e) => wrong.push(format!("fstat: {e}")),
    }
    wrong
}

/// Zero every page of the object behind `fd` (of `len` bytes) with a hole punch.
pub fn punch_hole(fd: std::os::fd::BorrowedFd<'_>, len: i64) -> nix::Result<()> {
    use nix::fcntl::FallocateFlags;
    nix::fcntl::fallocate(
        fd.as_raw_fd(),
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        len,
    )
}

/// One record ring of a mapped session object, written by hand as a hostile client does: the
/// control block at `ctrl` (counters in bytes: `tail` at 0, `head` at 64), `cap` bytes of data
/// at `data`. A record is a header word `(kind << 32) | len` and the payload in 8-byte words.
pub struct RawRing<'a> {
    pub map: &'a Mapping,
    pub ctrl: usize,
    pub data: usize,
    pub cap: u64,
}

/// A record header word.
pub const fn record_header(kind: u32, len: u32) -> u64 {
    ((kind as u64) << 32) | len as u64
}

impl RawRing<'_> {
    fn counter(&self, off: usize) -> &AtomicU64 {
        self.map
            .atomic_u64(self.ctrl + off)
            .expect("inside the object")
    }
    pub fn tail(&self) -> u64 {
        self.counter(TAIL).load(Ordering::Acquire)
    }
    pub fn head(&self) -> u64 {
        self.counter(HEAD).load(Ordering::Acquire)
    }
    pub fn set_tail(&self, v: u64) {
        self.counter(TAIL).store(v, Ordering::Release)
    }
    pub fn set_head(&self, v: u64) {
        self.counter(HEAD).store(v, Ordering::Release)
    }
    /// The data word at counter `pos` (reduced below the capacity).
    pub fn word(&self, pos: u64) -> &AtomicU64 {
        let off = (pos & (self.cap - 1)) as usize & !7;
        self.map
            .atomic_u64(self.data + off)
            .expect("inside the object")
    }
    /// Write a header `(kind, len)` and `payload` at `pos`, whatever they say; returns the
    /// position after the payload (rounded up to a word).
    pub fn put(&self, pos: u64, kind: u32, len: u32, payload: &[u8]) -> u64 {
        for (i, chunk) in payload.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.word(pos + 8 + 8 * i as u64)
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.word(pos)
            .store(record_header(kind, len), Ordering::Relaxed);
        pos + record_size(payload.len()) as u64
    }
    /// An honest record at `pos` (after a padding record if it would cross the end of the
    /// data area) when it and its padding fit in the room left with the consumer at `head`;
    /// the position after it.
    pub fn push(&self, pos: u64, head: u64, payload: &[u8]) -> Option<u64> {
        let rec = record_size(payload.len()) as u64;
        let to_end = self.cap - (pos & (self.cap - 1));
        let pad = if rec <= to_end { 0 } else { to_end };
        let room = self.cap.checked_sub(pos.wrapping_sub(head))?;
        if payload.len() > max_payload(self.cap as usize) || pad + rec > room {
            return None;
        }
        let mut p = pos;
        if pad > 0 {
            self.put(p, KIND_PADDING, (pad - 8) as u32, &[]);
            p += pad;
        }
        Some(self.put(p, KIND_DATA, payload.len() as u32, payload))
    }
}

/// `value` with every byte that is 5 or 7 changed (see [`hostile`]: no record the hostile
/// client writes into its request ring can then carry the tag of ThreadsStart or Quit).
fn tame(value: u64) -> u64 {
    let mut b = value.to_le_bytes();
    for x in &mut b {
        if *x == 5 || *x == 7 {
            *x ^= 0x80;
        }
    }
    u64::from_le_bytes(b)
}

/// Garbage of 0 to 64 bytes, tamed: mostly a request header that does not decode.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(65) as usize;
    let mut g = rng.bytes(n);
    for x in &mut g {
        if *x == 5 || *x == 7 {
            *x ^= 0x80;
        }
    }
    g
}

/// Take `slot` as a client (legitimately), then attack its own session object until stopped:
/// through a second mapping of the descriptor it was handed, or the descriptor itself. Reports
/// `READY <pid>` once attached.
///
/// One thing it never writes into its request ring: a byte 5 or 7, which could be the verb tag
/// of ThreadsStart (5) or Quit (7) in a record that decodes. Quit is a request any client of
/// the server's user may send (it stops the server by design), and ThreadsStart starts threads
/// up to the configured limit; neither is a fault. Everything else, the server must survive.
pub(super) fn hostile(name: &str, slot: u32, mode: &str, seed: u64, stop: &AtomicBool) -> i32 {
    let Some(mode) = Hostility::parse(mode) else {
        say(&format!("ERR unknown hostility {mode:?}"));
        return 2;
    };
    let client = match Client::connect(&ClientConfig::new(name).slot(slot)) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("ERR connect: {e}"));
            return 3;
        }
    };
    let fd = client.object_fd();
    let map = match Mapping::open_sealed(&fd) {
        Ok(m) => m,
        Err(e) => {
            say(&format!("ERR map: {e}"));
            return 3;
        }
    };
    let info = *client.info();
    let req = RawRing {
        map: &map,
        ctrl: REQ_CTRL,
        data: DATA,
        cap: u64::from(info.req_capacity),
    };
    let resp = RawRing {
        map: &map,
        ctrl: RESP_CTRL,
        data: DATA + info.req_capacity as usize,
        cap: u64::from(info.resp_capacity),
    };
    let cap = req.cap;
    let (req_data, resp_data) = (req.data, resp.data);
    let len = map.len();
    let u64_at = |off: usize| map.atomic_u64(off).expect("inside the object");
    let u32_at = |off: usize| map.atomic_u32(off).expect("inside the object");
    let bump = |off: usize| {
        let w = u32_at(off);
        w.fetch_add(1, Ordering::SeqCst);
        SysFutex.wake(w);
    };
    let wake_only = |off: usize| SysFutex.wake(u32_at(off));
    // Keep the request ring's data free of bytes 5 and 7 (see above).
    let tame_at = |off: usize, value: u64| -> u64 {
        if (req_data..resp_data).contains(&off) {
            tame(value)
        } else {
            value
        }
    };
    say(&format!("READY {}", std::process::id()));
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    let mut id = 1u64 << 62;
    let mut read_request = |rng: &mut Rng| {
        id += 1;
        let mut buf = Vec::new();
        encode_request(
            &Request {
                id,
                op: Op::Read {
                    key: rng.below(64).to_le_bytes().to_vec(),
                },
            },
            &mut buf,
        );
        buf
    };
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match mode {
            Hostility::Random => {
                // Pick a region, then an aligned place in it.
                let (lo, hi) = match rng.below(6) {
                    0 => (0, 128),
                    1 => (REQ_CTRL, REQ_CTRL + 192),
                    2 => (RESP_CTRL, RESP_CTRL + 192),
                    3 | 4 => (req_data, resp_data),
                    _ => (resp_data, len),
                };
                let value = match rng.below(5) {
                    0 => rng.next(),
                    1 => rng.below(4 * cap),
                    2 => u64::MAX - rng.below(4 * cap),
                    // A record header of any kind with any length.
                    3 => record_header(rng.below(4) as u32, rng.below(2 * cap) as u32),
                    _ => 0,
                };
                if rng.below(2) == 0 {
                    let off = (lo + rng.below((hi - lo) as u64 / 8) as usize * 8).min(len - 8);
                    u64_at(off).store(tame_at(off, value), Ordering::Relaxed);
                } else {
                    let off = (lo + rng.below((hi - lo) as u64 / 4) as usize * 4).min(len - 4);
                    u32_at(off).store(tame_at(off, value) as u32, Ordering::Relaxed);
                }
                if n % 64 == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                }
            }
            Hostility::Lying if n > 1 => {
                bump(REQ_CTRL + DATA_FUTEX);
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
                std::thread::yield_now();
            }
            Hostility::Lying => {
                let (head, tail) = (req.head(), req.tail());
                let max = max_payload(cap as usize) as u64;
                let new_tail = match seed % 6 {
                    // Longer than the ring's maximum record.
                    0 => {
                        let lie = max + 1 + rng.below(cap);
                        req.put(tail, KIND_DATA, lie as u32, &[]);
                        tail + 8
                    }
                    // Longer than what is published (only its header and a word are).
                    1 => {
                        let payload = read_request(&mut rng);
                        req.put(tail, KIND_DATA, 64 + rng.below(max - 64) as u32, &payload);
                        tail + 16
                    }
                    // A padding record that does not end at the end of the data area.
                    2 => {
                        let to_end = cap - (tail & (cap - 1));
                        let lie = (to_end + 8 + 8 * rng.below(8)) % cap;
                        req.put(tail, KIND_PADDING, lie as u32, &[]);
                        tail + 8
                    }
                    // A kind that does not exist.
                    3 => {
                        let payload = read_request(&mut rng);
                        let k = [0, 3, 4, u32::MAX][rng.below(4) as usize];
                        req.put(tail, k, payload.len() as u32, &payload)
                    }
                    // A tail that is not a multiple of 8.
                    4 => tail + 1 + rng.below(7),
                    // A tail more than the capacity ahead of the head.
                    _ => head + cap + 8 * (1 + rng.below(cap / 8)),
                };
                req.set_tail(new_tail);
                bump(REQ_CTRL + DATA_FUTEX);
            }
            Hostility::Futex => {
                bump(REQ_CTRL + DATA_FUTEX);
                bump(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::WakeOnly => {
                wake_only(REQ_CTRL + DATA_FUTEX);
                wake_only(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::Full => {
                // Fill every byte of room with valid reads, which the server answers until
                // its response ring is full.
                let head = req.head();
                let mut pos = req.tail();
                while let Some(p) = req.push(pos, head, &read_request(&mut rng)) {
                    pos = p;
                }
                req.set_tail(pos);
                if rng.below(2) == 0 {
                    bump(REQ_CTRL + DATA_FUTEX);
                    bump(RESP_CTRL + SPACE_FUTEX);
                } else {
                    wake_only(REQ_CTRL + DATA_FUTEX);
                    wake_only(RESP_CTRL + SPACE_FUTEX);
                }
            }
            Hostility::Flood => {
                let head = req.head();
                let mut pos = req.tail();
                while let Some(p) = req.push(pos, head, &garbage(&mut rng)) {
                    pos = p;
                }
                req.set_tail(pos);
                bump(REQ_CTRL + DATA_FUTEX);
                resp.set_head(resp.tail());
                bump(RESP_CTRL + SPACE_FUTEX);
            }
            Hostility::State => {
                u32_at(STATE).store(rng.below(5) as u32, Ordering::SeqCst);
                let magic = if rng.below(2) == 0 { MAGIC } else { rng.next() };
                u64_at(0).store(magic, Ordering::SeqCst);
                bump(REQ_CTRL + DATA_FUTEX);
            }
            Hostility::Punch => {
                // A few valid requests where the tail says, so that the server has taken some
                // (and moved its head) when the punch sets every counter back to zero.
                let head = req.head();
                let mut pos = req.tail();
                for _ in 0..1 + rng.below(64) {
                    match req.push(pos, head, &read_request(&mut rng)) {
                        Some(p) => pos = p,
                        None => break,
                    }
                }
                req.set_tail(pos);
                bump(REQ_CTRL + DATA_FUTEX);
                // Let the server take them before the punch, now and then.
                if rng.below(4) == 0 {
                    std::thread::yield_now();
                }
                if let Err(e) = punch_hole(fd, len as i64) {
                    say(&format!("ERR punch: {e}"));
                    return 3;
                }
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
            }
            Hostility::Resize => {
                let wrong = resize_attempts(fd, len as i64);
                if !wrong.is_empty() {
                    say(&format!("ERR the object changed: {}", wrong.join("; ")));
                    return 1;
                }
                // Its session is unaffected (keys of its own).
                let key = format!("resize-{}", n % 64).into_bytes();
                let vlen = rng.below(100) as usize;
                let value = rng.bytes(vlen);
                let ok = client
                    .insert(&key, &value)
                    .and_then(|_| client.read(&key))
                    .map(|got| got == Some(value));
                if ok != Ok(true) {
                    say(&format!("ERR its own session broke: {ok:?}"));
                    return 3;
                }
                if n % 100 == 0 {
                    say(&format!("ROUNDS {n}"));
                }
            }
        }
    }
    drop(client);
    0
}
