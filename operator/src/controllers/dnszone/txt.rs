//! TXT data in the presentation form PowerDNS returns: one or more quoted character-strings of at
//! most 255 bytes each, `"` and `\` escaped, bytes outside printable ASCII as `\DDD`.
//!
//! Every step is one pass over the input, so any value is normalised or refused in time linear in
//! its length.

/// Most bytes one DNS character-string holds.
const MAX_STRING: usize = 255;

/// The canonical form of a TXT value. Text in double quotes is read as character-strings (with
/// `\"`, `\\` and `\DDD` escapes) and kept as separate strings; any other text is one string. Strings
/// longer than 255 bytes are split.
pub fn canonical(value: &str) -> Result<String, String> {
    let value = value.trim();
    let strings = if value.starts_with('"') { quoted_strings(value)? } else { vec![value.as_bytes().to_vec()] };
    let mut out = Vec::new();
    for string in &strings {
        if string.is_empty() {
            out.push("\"\"".to_owned());
        }
        out.extend(string.chunks(MAX_STRING).map(present));
    }
    Ok(if out.is_empty() { "\"\"".to_owned() } else { out.join(" ") })
}

/// One character-string in quotes, escaped as PowerDNS prints it.
fn present(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\{b:03}")),
        }
    }
    s.push('"');
    s
}

/// The bytes of each quoted string in `value`, which starts with a quote.
fn quoted_strings(value: &str) -> Result<Vec<Vec<u8>>, String> {
    let bytes = value.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let (string, next) = one_string(bytes, i + 1)?;
                strings.push(string);
                i = next;
            }
            _ => return Err("has text outside double quotes; quote every string or none".to_owned()),
        }
    }
    Ok(strings)
}

/// The string starting after an opening quote at `start`, and the index after its closing quote.
fn one_string(bytes: &[u8], start: usize) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut i = start;
    loop {
        match bytes.get(i) {
            None => return Err("has a double quote that is never closed".to_owned()),
            Some(b'"') => return Ok((out, i + 1)),
            Some(b'\\') => {
                let digits = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
                match (digits, bytes.get(i + 1)) {
                    (Some(d), _) => {
                        let n = d.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                        out.push(u8::try_from(n).map_err(|_| format!("has the escape \\{n}, above \\255"))?);
                        i += 4;
                    }
                    (None, Some(&c)) => {
                        out.push(c);
                        i += 2;
                    }
                    (None, None) => return Err("ends with a lone backslash".to_owned()),
                }
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_quoted_and_escaped() {
        assert_eq!(canonical("v=spf1 -all").unwrap(), "\"v=spf1 -all\"");
        assert_eq!(canonical("say \"hi\"").unwrap(), "\"say \\\"hi\\\"\"");
        assert_eq!(canonical("back\\slash").unwrap(), "\"back\\\\slash\"");
        assert_eq!(canonical("é").unwrap(), "\"\\195\\169\"");
        assert_eq!(canonical("").unwrap(), "\"\"");
    }

    #[test]
    fn quoted_strings_are_kept_apart_and_escapes_read() {
        assert_eq!(canonical("\"already quoted\"").unwrap(), "\"already quoted\"");
        assert_eq!(canonical("\"a\" \"b\"").unwrap(), "\"a\" \"b\"");
        assert_eq!(canonical("\"\\065\\\"\"").unwrap(), "\"A\\\"\"");
        assert!(canonical("\"open").unwrap_err().contains("never closed"));
        assert!(canonical("\"a\" b").unwrap_err().contains("outside double quotes"));
        assert!(canonical("\"\\999\"").unwrap_err().contains("above \\255"));
    }

    #[test]
    fn long_strings_are_split_at_255_bytes_of_data_not_of_escapes() {
        assert_eq!(canonical(&"a".repeat(300)).unwrap(), format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45)));
        let slashes = canonical(&"\\".repeat(300)).unwrap();
        assert_eq!(slashes, format!("\"{}\" \"{}\"", "\\\\".repeat(255), "\\\\".repeat(45)));
    }

    /// Reads presentation form back into the bytes of each string.
    fn data(presented: &str) -> Vec<u8> {
        quoted_strings(presented).unwrap().concat()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_text_normalises_to_its_own_bytes_in_valid_strings(value in any::<String>()) {
            let value = value.trim().to_owned();
            prop_assume!(!value.starts_with('"'));
            let out = canonical(&value).unwrap();
            prop_assert_eq!(data(&out), value.as_bytes().to_vec());
            for string in quoted_strings(&out).unwrap() {
                prop_assert!(string.len() <= MAX_STRING);
            }
            prop_assert_eq!(canonical(&out).unwrap(), out.clone(), "canonical form is a fixed point");
        }

        #[test]
        fn adversarial_text_of_quotes_and_backslashes_ends(value in "[\"\\\\ 0-9a]{0,2000}") {
            // refused or normalised, never a loop; what normalises is a fixed point
            if let Ok(out) = canonical(&value) {
                prop_assert_eq!(canonical(&out).unwrap(), out.clone());
            }
        }
    }
}
