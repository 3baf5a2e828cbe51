//! Tests of showing bytes: quote and its read-back law, base64 and JSON bytes.

use super::*;
use crate::bytes::{base64, unbase64};

// --- quote -----------------------------------------------------------------------------

#[test]
fn quote_prints_plain_words_bare_and_the_rest_escaped() {
    let cases: &[(&[u8], &str)] = &[
        (b"abc", "abc"),
        (b"1", "1"),
        (b"a#", "a#"),
        (b"--absent", "--absent"),
        (b"!~{}", "!~{}"),
        (b"", r#""""#),
        (b"#x", r##""#x""##),
        (b"a b", r#""a b""#),
        (b" ", r#"" ""#),
        (b"it's", r#""it's""#),
        (b"say \"hi\"", r#""say \"hi\"""#),
        (b"a\\b", r#""a\\b""#),
        (b"\n\r\t\x07\x08", r#""\n\r\t\a\b""#),
        (b"\x00\x1f\x7f\x80\xff", r#""\x00\x1f\x7f\x80\xff""#),
        ("é".as_bytes(), r#""\xc3\xa9""#),
        (b"\x0b\x0c", r#""\x0b\x0c""#),
    ];
    for (bytes, want) in cases {
        assert_eq!(quote(bytes), *want, "{bytes:?}");
    }
}

/// Bytes with the awkward ones often: quotes, backslashes, `#`, whitespace, `x` and hex
/// digits after backslashes, high bytes.
fn awkward_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\"'\\# \t\n\r\x0b\x0cxXaf09\x00\x7f\x80\xff-".to_vec()),
    ];
    prop::collection::vec(byte, 0..24)
}

/// `cases` cases (a few under Miri, which interprets every step), with no failure file:
/// Miri's isolation forbids the file system, and a failing case is printed anyway.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { cases },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn quote_reads_back_as_exactly_one_word(bytes in awkward_bytes()) {
        let q = quote(&bytes);
        let tokens = split_line(&q).unwrap();
        prop_assert_eq!(tokens.len(), 1);
        prop_assert_eq!(&tokens[0].bytes, &bytes);
        prop_assert_eq!(argv_token(&q).unwrap().bytes, bytes.clone());
        // Bare exactly when split_line sees no quote.
        prop_assert_eq!(tokens[0].quoted, q.starts_with('"'));
        // Output is printable ASCII.
        prop_assert!(q.bytes().all(|c| (0x20..=0x7e).contains(&c)));
    }

    #[test]
    fn quoted_words_in_a_line_read_back_in_order(
        list in prop::collection::vec(awkward_bytes(), 0..6),
        sep in prop::sample::select(vec![" ", "\t", "  ", " \r\n "]),
    ) {
        let line = list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(sep);
        let got: Vec<Vec<u8>> = split_line(&line).unwrap().into_iter().map(|t| t.bytes).collect();
        prop_assert_eq!(got, list);
    }

    #[test]
    fn splitting_any_text_never_panics(line in any::<String>()) {
        let _ = split_line(&line);
        let _ = argv_token(&line);
    }

    #[test]
    fn splitting_quote_heavy_text_never_panics(
        line in prop::collection::vec(prop::sample::select(vec!['"', '\'', '\\', 'x', 'f', ' ', '#', 'é', 'a']), 0..20)
    ) {
        let line: String = line.into_iter().collect();
        if let Ok(tokens) = split_line(&line) {
            // Whatever split, quoted back, splits the same.
            let again = tokens.iter().map(|t| quote(&t.bytes)).collect::<Vec<_>>().join(" ");
            let back: Vec<Vec<u8>> = split_line(&again).unwrap().into_iter().map(|t| t.bytes).collect();
            prop_assert_eq!(back, tokens.into_iter().map(|t| t.bytes).collect::<Vec<_>>());
        }
        let _ = argv_token(&line);
    }
}

/// A small xorshift generator: the law over every length up to 64, with no framework.
#[test]
fn quote_law_over_random_bytes_of_every_length() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..=64 {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    // Half the bytes from the printable range, where bare words live.
                    if r & 1 == 0 {
                        0x20 + (r >> 8) as u8 % 0x5f
                    } else {
                        (r >> 8) as u8
                    }
                })
                .collect();
            let q = quote(&bytes);
            let t = split_line(&q).unwrap();
            assert_eq!(t.len(), 1, "{q}");
            assert_eq!(t[0].bytes, bytes, "{q}");
            assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
        }
    }
    // Every single byte, and every pair with a backslash or quote.
    for c in 0..=255u8 {
        for bytes in [vec![c], vec![b'\\', c], vec![c, b'"'], vec![b'#', c]] {
            let q = quote(&bytes);
            assert_eq!(split_line(&q).unwrap()[0].bytes, bytes, "{q}");
            assert_eq!(argv_token(&q).unwrap().bytes, bytes, "{q}");
        }
    }
}

// --- base64 and JSON bytes -------------------------------------------------------------

#[test]
fn base64_matches_the_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, coded) in vectors {
        assert_eq!(base64(plain.as_bytes()), coded);
        assert_eq!(unbase64(coded).unwrap(), plain.as_bytes());
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    assert_eq!(base64(&[0]), "AA==");
    assert_eq!(base64(&[0x00, 0x10, 0x83, 0x10, 0x51, 0x87]), "ABCDEFGH");
}

#[test]
fn unbase64_takes_only_canonical_padded_text() {
    for bad in [
        "Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v!A==", "Zm 9",
        "Zm9vYg=a", "=Zm9",
    ] {
        assert_eq!(unbase64(bad), None, "{bad}");
    }
}

#[test]
fn json_bytes_is_a_string_when_utf8_else_base64() {
    assert_eq!(json_bytes(b"abc"), json!("abc"));
    assert_eq!(json_bytes("é\n\0".as_bytes()), json!("é\n\0"));
    assert_eq!(json_bytes(b""), json!(""));
    assert_eq!(json_bytes(b"a\xff"), json!({"base64": "Yf8="}));
    assert_eq!(json_bytes(b"\xc3"), json!({"base64": "ww=="}));
    assert_eq!(bytes_from_json(&json!("é")), Some("é".as_bytes().to_vec()));
    assert_eq!(
        bytes_from_json(&json!({"base64": "Yf8="})),
        Some(b"a\xff".to_vec())
    );
    for bad in [
        json!(1),
        json!(null),
        json!(["a"]),
        json!({"base64": "Yf8"}),
        json!({"base64": 1}),
        json!({"base64": "Yf8=", "x": 1}),
        json!({"b64": "Yf8="}),
    ] {
        assert_eq!(bytes_from_json(&bad), None, "{bad}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_bytes_and_base64_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let v = json_bytes(&bytes);
        prop_assert_eq!(bytes_from_json(&v), Some(bytes.clone()));
        // Through the JSON text too.
        let back: Value = serde_json::from_str(&v.to_string()).unwrap();
        prop_assert_eq!(bytes_from_json(&back), Some(bytes.clone()));
        prop_assert_eq!(unbase64(&base64(&bytes)), Some(bytes.clone()));
        prop_assert_eq!(base64(&bytes).len(), bytes.len().div_ceil(3) * 4);
    }
}
