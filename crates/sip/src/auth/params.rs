//! The `Digest name=value, ...` syntax of `WWW-Authenticate` and `Authorization`
//! (RFC 2617 §1.2, RFC 3261 §25.1): tokens or quoted strings with `\` escapes, any
//! order, case-insensitive names, bounded.

use std::borrow::Cow;

use super::{MAX_HEADER_LEN, MAX_PARAMS};

/// The parameters of one digest header value.
#[derive(Debug)]
pub(super) struct DigestParams<'a> {
    items: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> DigestParams<'a> {
    /// Parses `Digest p1=v1, p2="v2", ...`.
    pub(super) fn parse(value: &'a str) -> Result<Self, &'static str> {
        if value.len() > MAX_HEADER_LEN {
            return Err("header value too long");
        }
        let value = value.trim_start();
        let (scheme, rest) = value.split_at(value.find(is_lws).unwrap_or(value.len()));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err("scheme is not Digest");
        }
        let mut items: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        let mut cursor = Cursor { s: rest, pos: 0 };
        loop {
            cursor.skip(|b| is_lws_byte(b) || b == b',');
            if cursor.at_end() {
                break;
            }
            let name = cursor.take_while(is_token_byte);
            if name.is_empty() {
                return Err("expected a parameter name");
            }
            cursor.skip(is_lws_byte);
            if !cursor.eat(b'=') {
                return Err("expected '=' after a parameter name");
            }
            cursor.skip(is_lws_byte);
            let value = if cursor.eat(b'"') {
                cursor.quoted()?
            } else {
                let token = cursor.take_while(|b| b != b',' && !is_lws_byte(b) && b != b'"');
                if token.is_empty() {
                    return Err("empty parameter value");
                }
                Cow::Borrowed(token)
            };
            if items.len() >= MAX_PARAMS {
                return Err("too many parameters");
            }
            if items.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err("duplicate parameter");
            }
            items.push((name, value));
            cursor.skip(is_lws_byte);
            if !cursor.at_end() && !cursor.eat(b',') {
                return Err("expected ',' between parameters");
            }
        }
        Ok(DigestParams { items })
    }

    /// The value of a parameter (name compared case-insensitively).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// Writes `"value"` with `\` and `"` escaped (RFC 3261 §25.1 quoted-pair).
pub(super) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'%' | b'*' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// A byte cursor that only stops on ASCII bytes, so every slice it makes falls on
/// a UTF-8 boundary; `get` keeps it panic-free regardless.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        self.skip(pred);
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// The rest of a quoted string whose opening quote was eaten.
    fn quoted(&mut self) -> Result<Cow<'a, str>, &'static str> {
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => {
                    let raw = self.s.get(start..self.pos).unwrap_or("");
                    self.pos += 1;
                    return Ok(owned.map_or(Cow::Borrowed(raw), Cow::Owned));
                }
                Some(b'\\') => {
                    let buf = owned.get_or_insert_with(|| {
                        self.s.get(start..self.pos).unwrap_or("").to_owned()
                    });
                    self.pos += 1;
                    let rest = self.s.get(self.pos..).unwrap_or("");
                    let c = rest.chars().next().ok_or("unterminated quoted string")?;
                    buf.push(c);
                    self.pos += c.len_utf8();
                }
                Some(_) => {
                    let rest = self.s.get(self.pos..).unwrap_or("");
                    let c = rest.chars().next().ok_or("unterminated quoted string")?;
                    if let Some(buf) = owned.as_mut() {
                        buf.push(c);
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}
