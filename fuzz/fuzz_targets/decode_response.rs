//! Response decoding on arbitrary bytes (padded or cut to one 32-byte slot): must return, never
//! panic; a slot that decodes must carry bytes 0..8 as its id, re-encode to its meaningful bytes
//! (zeros elsewhere) and decode to the same response again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkv::protocol::decode_response;
use shmkv_fuzz::{check_response_reencodes, slot_from};

fuzz_target!(|data: &[u8]| {
    let s = slot_from(data);
    if let Ok(r) = decode_response(&s) {
        assert_eq!(r.id, u64::from_le_bytes(s[..8].try_into().unwrap()));
        check_response_reencodes(&s, &r);
    }
});
