//! The hostile stores: [`CtrlStore`] into a control word the client can write, [`DataStore`]
//! into the request ring's data area (record headers that lie).

use crate::rig::Rig;
use crate::{HEADER, KIND_DATA, KIND_PADDING, record_bytes};
use shmkv::record::{RecordMem, max_payload};
use shmkv_fuzz::Bytes;
use std::sync::atomic::Ordering;

/// A hostile store into a control word the client can write; always 10 input bytes.
pub(crate) struct CtrlStore {
    pub(crate) word: u8,
    pub(crate) mode: u8,
    pub(crate) raw: u64,
}

impl CtrlStore {
    pub(crate) fn parse(b: &mut Bytes) -> Self {
        CtrlStore {
            word: b.u8(),
            mode: b.u8(),
            raw: b.u64(),
        }
    }

    /// The value: anything, near the word's current value (by bytes, or by whole words), zero,
    /// or near the top.
    pub(crate) fn value(&self, current: u64) -> u64 {
        match self.mode % 5 {
            0 => self.raw,
            1 => current.wrapping_add_signed(i64::from(self.raw as u8 as i8)),
            2 => current.wrapping_add_signed(8 * i64::from(self.raw as u8 as i8)),
            3 => 0,
            _ => u64::MAX - (self.raw & 0xFF),
        }
    }

    pub(crate) fn apply(&self, rig: &Rig) {
        let (rq, rs) = (rig.s.req.ctrl(), rig.s.resp.ctrl());
        let counter = match self.word % 8 {
            0 | 1 => &rq.producer.0.tail,
            2 => &rq.consumer.0.head,
            3 | 4 => &rs.consumer.0.head,
            w => {
                let wake = if w == 5 { &rq.wake.0 } else { &rs.wake.0 };
                let word = [
                    &wake.data_waiting,
                    &wake.data_futex,
                    &wake.space_waiting,
                    &wake.space_futex,
                ][usize::from(self.mode / 8 % 4)];
                let v = self.value(u64::from(word.load(Ordering::SeqCst)));
                word.store(v as u32, Ordering::SeqCst);
                return;
            }
        };
        counter.store(self.value(counter.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
}

/// A hostile store of a word into the request ring's data area, often a record header that
/// lies, at the position the client writes next (the published `tail`) or the server reads
/// next (the released `head`), optionally published by a forged `tail`; always 12 input
/// bytes.
pub(crate) struct DataStore {
    pub(crate) place: u8,
    pub(crate) what: u8,
    pub(crate) publish: u8,
    pub(crate) len: u32,
    pub(crate) raw: u32,
    pub(crate) extra: u8,
}

impl DataStore {
    pub(crate) fn parse(b: &mut Bytes) -> Self {
        DataStore {
            place: b.u8(),
            what: b.u8(),
            publish: b.u8(),
            len: b.u32(),
            raw: b.u32(),
            extra: b.u8(),
        }
    }

    pub(crate) fn apply(&self, rig: &Rig) {
        let mem = &rig.s.req;
        let cap = mem.capacity() as u64;
        let ctrl = mem.ctrl();
        let tail = ctrl.producer.0.tail.load(Ordering::SeqCst);
        let head = ctrl.consumer.0.head.load(Ordering::SeqCst);
        let pos = match self.place % 4 {
            0 | 1 => tail,
            2 => head,
            _ => u64::from(self.raw),
        };
        let off = (pos % cap) & !7;
        let to_end = cap - off;
        let max = max_payload(cap as usize) as u64;
        let small = u64::from(self.extra);
        // The length the header claims.
        let len = match self.what % 8 {
            0 => u64::from(self.len),
            1 => u64::from(u32::MAX) - small,
            2 => max + 1 + small,
            // Crossing the end of the data area by a few bytes (or ending exactly there).
            3 => (to_end - HEADER + small % 24).saturating_sub(8),
            4 => max - small.min(max),
            _ => small % 64,
        };
        let kind = match self.what / 8 % 4 {
            0 | 1 => KIND_DATA,
            // A padding record that should reach exactly the end, or not.
            2 => KIND_PADDING,
            _ => u64::from(self.raw) % 5,
        };
        let header = if self.what / 8 % 4 == 2 && self.what & 0x80 != 0 {
            (KIND_PADDING << 32) | (to_end - HEADER)
        } else {
            (kind << 32) | (len & 0xffff_ffff)
        };
        let word = if self.place & 0x80 != 0 {
            // A payload word instead of a header.
            u64::from(self.raw) | (u64::from(self.len) << 32)
        } else {
            header
        };
        // SAFETY: `off / 8 < cap / 8`. Single-threaded harness: no other access runs at the
        // same time (see `ClientMem::read_word`).
        unsafe { mem.write_word((off / 8) as usize, word) };
        // Publish the lie: past the header, past the record it claims, or by a few words.
        let advance = match self.publish % 4 {
            0 => 0,
            1 => HEADER,
            2 => record_bytes(len).min(1 << 32),
            _ => 8 * u64::from(self.extra % 8),
        };
        if advance > 0 {
            ctrl.producer
                .0
                .tail
                .store(pos.wrapping_add(advance), Ordering::SeqCst);
        }
    }
}
