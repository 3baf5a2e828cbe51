//! Tests of the words: splitting a line, and one command-line argument.

use super::*;

// --- split_line ------------------------------------------------------------------------

#[test]
fn split_line_separates_words_on_any_whitespace() {
    assert!(split_line("").unwrap().is_empty());
    assert!(split_line(" \t\r\n\x0b\x0c ").unwrap().is_empty());
    assert_eq!(words("  insert 1\t2\r\n"), [b("insert"), b("1"), b("2")]);
    assert_eq!(words("a\x0bb\x0cc"), [b("a"), b("b"), b("c")]);
    // Bare words are taken as they are, backslashes and non-ASCII included.
    assert_eq!(words(r"a\n é"), [b(r"a\n"), b("é")]);
    let t = split_line("read k").unwrap();
    assert_eq!(t, [Token::bare("read"), Token::bare("k")]);
}

#[test]
fn split_line_comments_start_at_an_unquoted_hash_that_starts_a_word() {
    assert!(split_line("# only a comment").unwrap().is_empty());
    assert!(split_line("   #").unwrap().is_empty());
    assert_eq!(
        words("insert 1 2   # comment \"x"),
        [b("insert"), b("1"), b("2")]
    );
    assert_eq!(words("a#b c#"), [b("a#b"), b("c#")]);
    assert_eq!(words("\"#x\" '#y'"), [b("#x"), b("#y")]);
}

#[test]
fn split_line_double_quotes_take_redis_escapes() {
    assert_eq!(
        words(r#""a b" "\n\r\t\b\a\\\"" "\x00\xff\x7F\xAb""#),
        [
            b("a b"),
            b"\n\r\t\x08\x07\\\"".to_vec(),
            vec![0x00, 0xff, 0x7f, 0xab],
        ]
    );
    // Any other escaped character is itself; \x without two hex digits is "x".
    assert_eq!(words(r#""\q\'\ \é""#), [b("q' é")]);
    assert_eq!(words(r#""\xZZ" "\x4" "\x""#), [b("xZZ"), b("x4"), b("x")]);
    // A single quote inside double quotes is a character.
    assert_eq!(words(r#""it's""#), [b("it's")]);
    // The empty word.
    let t = split_line(r#""""#).unwrap();
    assert_eq!(
        t,
        [Token {
            bytes: vec![],
            quoted: true
        }]
    );
}

#[test]
fn split_line_single_quotes_take_only_the_quote_escape() {
    assert_eq!(words(r"'it\'s'"), [b("it's")]);
    assert_eq!(words(r"'a\nb\x00'"), [b(r"a\nb\x00")]);
    assert_eq!(words(r#"'say "hi"'"#), [b(r#"say "hi""#)]);
    assert_eq!(words("''"), [b("")]);
}

#[test]
fn split_line_a_quote_inside_a_word_opens_a_quoted_part_as_redis_does() {
    let t = split_line(r#"a"b c" d'e f'"#).unwrap();
    assert_eq!(
        t,
        [
            Token {
                bytes: b("ab c"),
                quoted: true
            },
            Token {
                bytes: b("de f"),
                quoted: true
            }
        ]
    );
}

#[test]
fn split_line_errors_are_one_line_with_the_column() {
    let e = split_line(r#"insert "a b"#).unwrap_err();
    assert_eq!(e, "unbalanced quotes: the \" at column 8 is never closed");
    let e = split_line("read 'abc").unwrap_err();
    assert_eq!(e, "unbalanced quotes: the ' at column 6 is never closed");
    // A backslash at the end does not close anything.
    assert!(
        split_line(r#""abc\"#)
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    assert!(
        split_line(r#""abc\""#)
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    assert!(
        split_line(r"'abc\'")
            .unwrap_err()
            .starts_with("unbalanced quotes")
    );
    let e = split_line(r#"read "a"b"#).unwrap_err();
    assert_eq!(
        e,
        "the closing \" at column 8 must be followed by a space or the end of the line"
    );
    assert_eq!(
        split_line("é 'x'y").unwrap_err(),
        "the closing ' at column 5 must be followed by a space or the end of the line"
    );
    // A quote followed by whitespace of any kind is fine.
    assert_eq!(words("\"a\"\t'b'\n"), [b("a"), b("b")]);
    for line in [r#"""#, "'", r#""a"b"#, r#"''x"#] {
        assert!(!split_line(line).unwrap_err().contains('\n'));
    }
}

// --- argv_token ------------------------------------------------------------------------

#[test]
fn argv_token_is_literal_unless_it_starts_with_a_quote() {
    for arg in [
        "insert", "a b", r"a\x00", "#x", r#"a"b""#, "", "--absent", "é",
    ] {
        assert_eq!(argv_token(arg).unwrap(), Token::bare(arg));
    }
    let t = argv_token(r#""a\x00b""#).unwrap();
    assert_eq!(
        t,
        Token {
            bytes: vec![b'a', 0, b'b'],
            quoted: true
        }
    );
    assert_eq!(argv_token(r"'it\'s'").unwrap().bytes, b("it's"));
    assert_eq!(argv_token(r#""a b""#).unwrap().bytes, b("a b"));
    assert_eq!(
        argv_token(r#""""#).unwrap(),
        Token {
            bytes: vec![],
            quoted: true
        }
    );
    assert!(argv_token(r#""--absent""#).unwrap().quoted);
}

#[test]
fn argv_token_errors() {
    assert_eq!(
        argv_token(r#""abc"#).unwrap_err(),
        "argument \"abc: unbalanced quotes: the \" at column 1 is never closed"
    );
    assert_eq!(
        argv_token(r#""a"b"#).unwrap_err(),
        "argument \"a\"b goes on after its closing quote (quote the whole argument)"
    );
    assert!(argv_token(r#""a" "b""#).is_err());
    assert!(argv_token("'a' ").is_err());
}
