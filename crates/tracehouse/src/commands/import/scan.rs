//! Splitting an input stream into items without reading it whole.
//!
//! [`JsonScanner`] finds where each JSON value ends by tracking strings and bracket depth only
//! (the values are parsed later, item by item, by the ingest decoders), so a JSON array of any
//! size is handed out one element at a time, `{"data": [...]}` likewise, and a file of JSON
//! values one after another (pretty-printed objects, OTLP requests one per line) one value at a
//! time. [`LineScanner`] does the same for JSONL. Both know their position (bytes consumed, line,
//! and for JSON whether they are inside an array) so an import can stop after any item and
//! resume there later.

use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};

/// Largest item accepted; the server's own limit on an inflated request body is the same.
pub(super) const MAX_ITEM_BYTES: usize = 256 * 1024 * 1024;

/// Where a JSON scanner is between two items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ScanState {
    /// Between top-level values.
    TopLevel,
    /// Inside a top-level array of items.
    InArray,
    /// Inside the `data` array of a `{"data": [...]}` wrapper.
    InDataArray,
    /// Inside a wrapper object after its `data` array (other keys may follow).
    AfterDataArray,
    /// The input cannot be read any further (a syntax error outside items).
    Ended,
}

/// What the scanner found next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scanned {
    /// One item: its bytes and the 1-based line it starts on.
    Item { bytes: Vec<u8>, line: u64 },
    /// Something that is not an item; `bytes` is what was read of it (possibly cut short).
    Invalid {
        reason: String,
        bytes: Vec<u8>,
        line: u64,
    },
    /// No more items.
    End,
}

/// A position to resume from: bytes consumed, the line there, and the scanner state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ScanPosition {
    pub(super) offset: u64,
    pub(super) line: u64,
    pub(super) state: ScanState,
}

impl ScanPosition {
    /// The start of an input.
    pub(super) const START: ScanPosition = ScanPosition {
        offset: 0,
        line: 1,
        state: ScanState::TopLevel,
    };
}

/// Progress through one JSON value whose end is being looked for.
#[derive(Debug, Default)]
struct ValueScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The value is a number or a literal, which ends at the first delimiter.
    scalar: bool,
    started: bool,
}

impl ValueScan {
    /// How many bytes of `chunk` belong to the value, and whether the value ends there.
    fn feed(&mut self, chunk: &[u8]) -> (usize, bool) {
        let mut at = 0;
        if !self.started {
            self.started = true;
            match chunk.first() {
                Some(b'{' | b'[') => {
                    self.depth = 1;
                    at = 1;
                }
                Some(b'"') => {
                    self.in_string = true;
                    at = 1;
                }
                _ => self.scalar = true,
            }
        }
        if self.scalar {
            return match chunk[at..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n'))
            {
                Some(end) => (at + end, true),
                None => (chunk.len(), false),
            };
        }
        while at < chunk.len() {
            if self.escaped {
                self.escaped = false;
                at += 1;
                continue;
            }
            if self.in_string {
                // Most bytes of span logs are inside strings: jump to the next quote or escape.
                match memchr::memchr2(b'"', b'\\', &chunk[at..]) {
                    None => return (chunk.len(), false),
                    Some(found) => {
                        let hit = at + found;
                        at = hit + 1;
                        if chunk[hit] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return (at, true);
                            }
                        }
                    }
                }
                continue;
            }
            match chunk[at] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return (at + 1, true);
                    }
                }
                _ => {}
            }
            at += 1;
        }
        (chunk.len(), false)
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// A short, printable description of the byte found where an item should start.
fn describe(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("{:?}", byte as char)
    } else {
        format!("byte 0x{byte:02x}")
    }
}

/// Splits a JSON stream into items (see the module docs).
pub(super) struct JsonScanner<R> {
    reader: R,
    offset: u64,
    line: u64,
    state: ScanState,
    /// Top-level values are the items (OTLP requests), never arrays to stream.
    whole_values: bool,
}

/// What reading one value produced.
enum ValueRead {
    Complete,
    TooLarge,
    Truncated,
}

impl<R: BufRead> JsonScanner<R> {
    /// A scanner over `reader`, which is positioned at `position`.
    pub(super) fn new(reader: R, position: ScanPosition, whole_values: bool) -> Self {
        Self {
            reader,
            offset: position.offset,
            line: position.line,
            state: position.state,
            whole_values,
        }
    }

    /// Where the scanner is: after the last item returned.
    pub(super) fn position(&self) -> ScanPosition {
        ScanPosition {
            offset: self.offset,
            line: self.line,
            state: self.state,
        }
    }

    fn consume(&mut self, count: usize) -> io::Result<()> {
        let buffer = self.reader.fill_buf()?;
        self.line += newlines(&buffer[..count]);
        self.offset += count as u64;
        self.reader.consume(count);
        Ok(())
    }

    /// The next byte that is not whitespace (or a byte-order mark at the very start), not consumed.
    fn peek_token(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            if self.offset == 0 && buffer.starts_with(b"\xEF\xBB\xBF") {
                self.offset += 3;
                self.reader.consume(3);
                continue;
            }
            match buffer.iter().position(|b| !is_space(*b)) {
                Some(at) => {
                    let byte = buffer[at];
                    self.consume(at)?;
                    return Ok(Some(byte));
                }
                None => {
                    let all = buffer.len();
                    self.consume(all)?;
                }
            }
        }
    }

    /// Reads one value starting at the current (non-space) byte into `out`; past
    /// [`MAX_ITEM_BYTES`] it keeps scanning to the value's end but stops copying.
    fn read_value(&mut self, out: &mut Vec<u8>) -> io::Result<ValueRead> {
        let mut scan = ValueScan::default();
        let mut too_large = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                // A number or literal may end the input; anything else is cut off.
                return Ok(if scan.scalar && !out.is_empty() {
                    ValueRead::Complete
                } else {
                    ValueRead::Truncated
                });
            }
            let (taken, done) = scan.feed(buffer);
            if out.len() + taken > MAX_ITEM_BYTES {
                too_large = true;
            }
            if !too_large {
                out.extend_from_slice(&buffer[..taken]);
            }
            self.consume(taken)?;
            if done {
                return Ok(if too_large {
                    ValueRead::TooLarge
                } else {
                    ValueRead::Complete
                });
            }
        }
    }

    fn invalid(&mut self, reason: String, bytes: Vec<u8>, line: u64) -> Scanned {
        Scanned::Invalid {
            reason,
            bytes,
            line,
        }
    }

    /// One value as an item, or why it is not one.
    fn value_item(&mut self) -> io::Result<Scanned> {
        let line = self.line;
        let mut bytes = Vec::new();
        Ok(match self.read_value(&mut bytes)? {
            ValueRead::Complete => Scanned::Item { bytes, line },
            ValueRead::TooLarge => self.invalid(
                format!("item is larger than {MAX_ITEM_BYTES} bytes"),
                Vec::new(),
                line,
            ),
            ValueRead::Truncated => {
                self.state = ScanState::Ended;
                self.invalid(
                    "the input ends in the middle of this item".to_owned(),
                    bytes,
                    line,
                )
            }
        })
    }

    /// The next item.
    pub(super) fn next_item(&mut self) -> io::Result<Scanned> {
        loop {
            match self.state {
                ScanState::Ended => return Ok(Scanned::End),
                ScanState::TopLevel => {
                    let Some(byte) = self.peek_token()? else {
                        return Ok(Scanned::End);
                    };
                    if self.whole_values {
                        return self.value_item();
                    }
                    match byte {
                        b'[' => {
                            self.consume(1)?;
                            self.state = ScanState::InArray;
                        }
                        b'{' => {
                            if let Some(found) = self.object_at_top()? {
                                return Ok(found);
                            }
                        }
                        other => {
                            let line = self.line;
                            if !matches!(other, b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') {
                                self.state = ScanState::Ended;
                                return Ok(self.invalid(
                                    format!("not JSON: unexpected {}", describe(other)),
                                    Vec::new(),
                                    line,
                                ));
                            }
                            let found = self.value_item()?;
                            return Ok(match found {
                                Scanned::Item { bytes, line } => self.invalid(
                                    "expected a span log object, an array of them or {\"data\": [...]}".to_owned(),
                                    bytes,
                                    line,
                                ),
                                other => other,
                            });
                        }
                    }
                }
                ScanState::InArray | ScanState::InDataArray => {
                    let Some(byte) = self.peek_token()? else {
                        self.state = ScanState::Ended;
                        let line = self.line;
                        return Ok(self.invalid(
                            "the input ends inside an array (missing `]`)".to_owned(),
                            Vec::new(),
                            line,
                        ));
                    };
                    match byte {
                        b']' => {
                            self.consume(1)?;
                            self.state = if self.state == ScanState::InArray {
                                ScanState::TopLevel
                            } else {
                                ScanState::AfterDataArray
                            };
                        }
                        // Commas are skipped rather than checked: a missing one is harmless
                        // here, and the items themselves are validated strictly.
                        b',' => self.consume(1)?,
                        _ => return self.value_item(),
                    }
                }
                ScanState::AfterDataArray => {
                    let Some(byte) = self.peek_token()? else {
                        self.state = ScanState::Ended;
                        return Ok(Scanned::End);
                    };
                    match byte {
                        b'}' => {
                            self.consume(1)?;
                            self.state = ScanState::TopLevel;
                        }
                        b',' | b':' => self.consume(1)?,
                        // Keys and values of the wrapper besides `data` are skipped.
                        _ => {
                            let mut skipped = Vec::new();
                            if let ValueRead::Truncated = self.read_value(&mut skipped)? {
                                self.state = ScanState::Ended;
                                return Ok(Scanned::End);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A top-level object: either a `{"data": [...]}` wrapper, whose array is then streamed
    /// (`None` is returned with the state moved into it), or an item on its own.
    fn object_at_top(&mut self) -> io::Result<Option<Scanned>> {
        let line = self.line;
        self.consume(1)?;
        let mut object = vec![b'{'];
        loop {
            let Some(byte) = self.peek_token()? else {
                self.state = ScanState::Ended;
                return Ok(Some(self.invalid(
                    "the input ends in the middle of this item".to_owned(),
                    object,
                    line,
                )));
            };
            match byte {
                b'}' => {
                    self.consume(1)?;
                    object.push(b'}');
                    return Ok(Some(Scanned::Item {
                        bytes: object,
                        line,
                    }));
                }
                b',' => {
                    self.consume(1)?;
                    object.push(b',');
                }
                b'"' => {
                    let mut key = Vec::new();
                    if !matches!(self.read_value(&mut key)?, ValueRead::Complete) {
                        self.state = ScanState::Ended;
                        return Ok(Some(self.invalid(
                            "the input ends in the middle of this item".to_owned(),
                            object,
                            line,
                        )));
                    }
                    if self.peek_token()? != Some(b':') {
                        self.state = ScanState::Ended;
                        object.extend_from_slice(&key);
                        return Ok(Some(self.invalid(
                            "not JSON: expected `:` after an object key".to_owned(),
                            object,
                            line,
                        )));
                    }
                    self.consume(1)?;
                    let value_start = self.peek_token()?;
                    if key == b"\"data\"" && value_start == Some(b'[') {
                        self.consume(1)?;
                        self.state = ScanState::InDataArray;
                        return Ok(None);
                    }
                    object.extend_from_slice(&key);
                    object.push(b':');
                    let mut value = Vec::new();
                    match self.read_value(&mut value)? {
                        ValueRead::Complete => object.extend_from_slice(&value),
                        ValueRead::TooLarge => {
                            // Skip the rest of the object too, so the next item starts cleanly.
                            let mut rest = ValueScan {
                                depth: 1,
                                started: true,
                                ..ValueScan::default()
                            };
                            loop {
                                let buffer = self.reader.fill_buf()?;
                                if buffer.is_empty() {
                                    self.state = ScanState::Ended;
                                    break;
                                }
                                let (taken, done) = rest.feed(buffer);
                                self.consume(taken)?;
                                if done {
                                    break;
                                }
                            }
                            return Ok(Some(self.invalid(
                                format!("item is larger than {MAX_ITEM_BYTES} bytes"),
                                Vec::new(),
                                line,
                            )));
                        }
                        ValueRead::Truncated => {
                            self.state = ScanState::Ended;
                            object.extend_from_slice(&value);
                            return Ok(Some(self.invalid(
                                "the input ends in the middle of this item".to_owned(),
                                object,
                                line,
                            )));
                        }
                    }
                }
                other => {
                    self.state = ScanState::Ended;
                    return Ok(Some(self.invalid(
                        format!("not JSON: unexpected {} in an object", describe(other)),
                        object,
                        line,
                    )));
                }
            }
        }
    }
}

/// Splits JSONL into lines; blank lines are skipped.
pub(super) struct LineScanner<R> {
    reader: R,
    offset: u64,
    line: u64,
    buffer: Vec<u8>,
}

impl<R: BufRead> LineScanner<R> {
    /// A scanner over `reader`, which is positioned at `position`.
    pub(super) fn new(reader: R, position: ScanPosition) -> Self {
        Self {
            reader,
            offset: position.offset,
            line: position.line,
            buffer: Vec::new(),
        }
    }

    /// Where the scanner is: after the last line returned.
    pub(super) fn position(&self) -> ScanPosition {
        ScanPosition {
            offset: self.offset,
            line: self.line,
            state: ScanState::TopLevel,
        }
    }

    /// The next non-blank line.
    pub(super) fn next_item(&mut self) -> io::Result<Scanned> {
        loop {
            self.buffer.clear();
            let read = <&mut R as io::Read>::take(&mut self.reader, MAX_ITEM_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buffer)?;
            if read == 0 {
                return Ok(Scanned::End);
            }
            let line = self.line;
            let at_start = self.offset == 0;
            self.offset += read as u64;
            if self.buffer.last() != Some(&b'\n') && read > MAX_ITEM_BYTES {
                // Skip the rest of the overlong line.
                loop {
                    let buffer = self.reader.fill_buf()?;
                    if buffer.is_empty() {
                        break;
                    }
                    match memchr::memchr(b'\n', buffer) {
                        Some(at) => {
                            self.offset += at as u64 + 1;
                            self.reader.consume(at + 1);
                            break;
                        }
                        None => {
                            let all = buffer.len();
                            self.offset += all as u64;
                            self.reader.consume(all);
                        }
                    }
                }
                self.line += 1;
                return Ok(Scanned::Invalid {
                    reason: format!("line is longer than {MAX_ITEM_BYTES} bytes"),
                    bytes: Vec::new(),
                    line,
                });
            }
            self.line += 1;
            let mut text: &[u8] = &self.buffer;
            if at_start {
                text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            }
            let start = text.iter().position(|b| !is_space(*b));
            let end = text.iter().rposition(|b| !is_space(*b));
            if let (Some(start), Some(end)) = (start, end) {
                return Ok(Scanned::Item {
                    bytes: text[start..=end].to_vec(),
                    line,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item and invalid entry, with the position after each.
    fn scan_json(text: &str, whole_values: bool) -> Vec<(String, u64)> {
        scan_json_from(text, ScanPosition::START, whole_values)
            .into_iter()
            .map(|(found, _)| found)
            .collect()
    }

    fn scan_json_from(
        text: &str,
        position: ScanPosition,
        whole_values: bool,
    ) -> Vec<((String, u64), ScanPosition)> {
        // A tiny buffer puts chunk boundaries everywhere, inside strings and escapes too.
        let reader = io::BufReader::with_capacity(
            3,
            io::Cursor::new(text.as_bytes()[position.offset as usize..].to_vec()),
        );
        let mut scanner = JsonScanner::new(reader, position, whole_values);
        let mut out = Vec::new();
        loop {
            let found = match scanner.next_item().unwrap() {
                Scanned::End => break,
                Scanned::Item { bytes, line } => (String::from_utf8(bytes).unwrap(), line),
                Scanned::Invalid { reason, line, .. } => (format!("! {reason}"), line),
            };
            out.push((found, scanner.position()));
        }
        out
    }

    #[test]
    fn streams_arrays_wrappers_and_values() {
        let text = "\u{feff}[ {\"a\": \"x]}\\\"\"}, {\"b\": [1, {\"c\": 2}]}\n, 3 ]";
        assert_eq!(
            scan_json(text, false),
            vec![
                ("{\"a\": \"x]}\\\"\"}".to_owned(), 1),
                ("{\"b\": [1, {\"c\": 2}]}".to_owned(), 1),
                ("3".to_owned(), 2),
            ]
        );
        let wrapper = "{\"meta\": {\"n\": [1]}, \"data\": [{\"i\": 1},\n{\"i\": 2}], \"more\": \"x\"}\n[{\"i\": 3}]";
        assert_eq!(
            scan_json(wrapper, false),
            vec![
                ("{\"i\": 1}".to_owned(), 1),
                ("{\"i\": 2}".to_owned(), 2),
                ("{\"i\": 3}".to_owned(), 3),
            ]
        );
        let objects = "{\"trace_unique_id\": \"t\",\n  \"x\": [1]}\n{\"y\": \"}\"}";
        assert_eq!(
            scan_json(objects, false),
            vec![
                ("{\"trace_unique_id\":\"t\",\"x\":[1]}".to_owned(), 1),
                ("{\"y\":\"}\"}".to_owned(), 3),
            ]
        );
        assert_eq!(scan_json("  \n ", false), vec![]);
        assert_eq!(scan_json("[]", false), vec![]);
    }

    #[test]
    fn whole_values_are_items() {
        let text = "{\"resourceSpans\": [{\"a\": 1}]}\n{\"resourceSpans\": []}\n";
        assert_eq!(
            scan_json(text, true),
            vec![
                ("{\"resourceSpans\": [{\"a\": 1}]}".to_owned(), 1),
                ("{\"resourceSpans\": []}".to_owned(), 2),
            ]
        );
    }

    #[test]
    fn reports_what_is_not_an_item() {
        let truncated = scan_json("[{\"a\": 1}, {\"b\": \"unterminated", false);
        assert_eq!(truncated.len(), 2);
        assert_eq!(truncated[0].0, "{\"a\": 1}");
        assert!(
            truncated[1].0.starts_with("! the input ends"),
            "{truncated:?}"
        );
        let garbage = scan_json("hello", false);
        assert_eq!(garbage.len(), 1);
        assert!(garbage[0].0.starts_with("! not JSON"), "{garbage:?}");
        let scalar = scan_json("42 [{\"a\": 1}]", false);
        assert_eq!(scalar.len(), 2);
        assert!(
            scalar[0].0.starts_with("! expected a span log"),
            "{scalar:?}"
        );
        let unclosed = scan_json("[{\"a\": 1}", false);
        assert!(unclosed[1].0.contains("missing `]`"), "{unclosed:?}");
    }

    #[test]
    fn resumes_from_any_item_boundary() {
        let text = "{\"data\": [{\"i\": 1}, {\"i\": 2},\n {\"i\": 3}]} [{\"i\": 4}, {\"i\": 5}]";
        let all = scan_json_from(text, ScanPosition::START, false);
        assert_eq!(all.len(), 5);
        for (index, (_, position)) in all.iter().enumerate() {
            let rest: Vec<(String, u64)> = scan_json_from(text, *position, false)
                .into_iter()
                .map(|(found, _)| found)
                .collect();
            let expected: Vec<(String, u64)> = all[index + 1..]
                .iter()
                .map(|(found, _)| found.clone())
                .collect();
            assert_eq!(rest, expected, "resuming at {position:?}");
        }
    }

    #[test]
    fn lines_skip_blanks_and_count_from_one() {
        let text = "\u{feff}{\"a\": 1}\r\n\n  \n{\"b\": 2}\n{\"c\": 3}";
        let mut scanner = LineScanner::new(
            io::BufReader::with_capacity(4, io::Cursor::new(text.as_bytes().to_vec())),
            ScanPosition::START,
        );
        let mut found = Vec::new();
        let mut positions = Vec::new();
        while let Scanned::Item { bytes, line } = scanner.next_item().unwrap() {
            found.push((String::from_utf8(bytes).unwrap(), line));
            positions.push(scanner.position());
        }
        assert_eq!(
            found,
            vec![
                ("{\"a\": 1}".to_owned(), 1),
                ("{\"b\": 2}".to_owned(), 4),
                ("{\"c\": 3}".to_owned(), 5)
            ]
        );
        let resumed = LineScanner::new(
            io::Cursor::new(text.as_bytes()[positions[0].offset as usize..].to_vec()),
            positions[0],
        )
        .next_item()
        .unwrap();
        assert_eq!(
            resumed,
            Scanned::Item {
                bytes: b"{\"b\": 2}".to_vec(),
                line: 4
            }
        );
    }
}
