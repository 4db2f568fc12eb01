//! The object grammar of the file: keys, the small values captured as
//! text for serde_json, and the loop over a `data` array that hands its
//! bulk to the pipeline and its rest to the element parser.

use super::*;

impl<R: Read> Reader<R> {
    /// Copies the text of the JSON value that starts here (after
    /// whitespace), checking only its nesting (at most [`MAX_DEPTH`] levels
    /// counting `depth` levels around it): serde_json checks the rest.
    /// Returns the text and its input offset.
    pub(super) fn capture(&mut self, depth: usize) -> Result<(Vec<u8>, u64)> {
        let first = self.peek()?.ok_or_else(|| early_end("a value"))?;
        let at = self.offset();
        let mut out = Vec::new();
        match first {
            b'"' => {
                out.push(b'"');
                self.pos += 1;
                self.copy_string(&mut out)?;
            }
            b'[' | b'{' => {
                let mut nest = 0usize;
                loop {
                    if self.pos == self.end {
                        self.fill(1)?;
                        if self.pos == self.end {
                            return Ok((out, at)); // serde_json reports the early end
                        }
                    }
                    let chunk = &self.buf[self.pos..self.end];
                    let stop = chunk
                        .iter()
                        .position(|&b| matches!(b, b'"' | b'[' | b']' | b'{' | b'}'));
                    let Some(i) = stop else {
                        out.extend_from_slice(chunk);
                        self.pos = self.end;
                        continue;
                    };
                    let b = chunk[i];
                    out.extend_from_slice(&chunk[..=i]);
                    self.pos += i + 1;
                    match b {
                        b'"' => self.copy_string(&mut out)?,
                        b'[' | b'{' => {
                            nest += 1;
                            if depth + nest > MAX_DEPTH {
                                return Err(err(JsonErrorKind::TooDeep {
                                    offset: self.offset() - 1,
                                    max: MAX_DEPTH,
                                }));
                            }
                        }
                        _ => {
                            nest -= 1;
                            if nest == 0 {
                                return Ok((out, at));
                            }
                        }
                    }
                }
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => loop {
                // A number or literal: up to the first byte that cannot be in one.
                if self.pos == self.end {
                    self.fill(1)?;
                    if self.pos == self.end {
                        break;
                    }
                }
                let chunk = &self.buf[self.pos..self.end];
                let n = chunk
                    .iter()
                    .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
                    .unwrap_or(chunk.len());
                out.extend_from_slice(&chunk[..n]);
                self.pos += n;
                if self.pos < self.end {
                    break;
                }
            },
            _ => return Err(syntax("expected value", at)),
        }
        Ok((out, at))
    }

    /// Copies the rest of a string, up to and including its closing quote.
    pub(super) fn copy_string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        loop {
            if self.pos == self.end {
                self.fill(1)?;
                if self.pos == self.end {
                    return Ok(()); // serde_json reports the early end
                }
            }
            let chunk = &self.buf[self.pos..self.end];
            let Some(i) = memchr2(b'"', b'\\', chunk) else {
                out.extend_from_slice(chunk);
                self.pos = self.end;
                continue;
            };
            out.extend_from_slice(&chunk[..=i]);
            self.pos += i + 1;
            if chunk[i] == b'"' {
                return Ok(());
            }
            // The escaped byte, whatever it is, does not end the string.
            self.fill(1)?;
            if self.pos < self.end {
                out.push(self.buf[self.pos]);
                self.pos += 1;
            }
        }
    }

    /// Where the plain string that starts here (after whitespace) has its
    /// text in the window: a string without escapes or control characters
    /// whose closing quote is in the window. `None` for anything else
    /// (nothing consumed): the general path reads it, and reports errors.
    /// Most strings of a file are plain: keys, names, dtypes, checksums.
    pub(super) fn plain_string(&mut self) -> Result<Option<Range<usize>>> {
        if self.peek()? != Some(b'"') {
            return Ok(None);
        }
        let from = self.pos + 1;
        let rest = &self.buf[from..self.end];
        Ok(match memchr2(b'"', b'\\', rest) {
            Some(i) if rest[i] == b'"' && !rest[..i].iter().any(|&b| b < 0x20) => {
                Some(from..from + i)
            }
            _ => None,
        })
    }

    /// `f` of the text of a plain string (see [`Reader::plain_string`]),
    /// when it is valid UTF-8 and `f` takes it (then the string is
    /// consumed); `None` with nothing consumed otherwise.
    pub(super) fn plain_str<T>(&mut self, f: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>> {
        let Some(r) = self.plain_string()? else {
            return Ok(None);
        };
        match std::str::from_utf8(&self.buf[r.clone()]).ok().and_then(f) {
            Some(t) => {
                self.pos = r.end + 1;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    /// Reads a string (the next value must be one).
    pub(super) fn string(&mut self) -> Result<String> {
        if let Some(s) = self.plain_str(|s| Some(s.to_owned()))? {
            return Ok(s);
        }
        let (raw, at) = self.capture(0)?;
        let inner = raw
            .strip_prefix(b"\"")
            .and_then(|r| r.strip_suffix(b"\""))
            .filter(|r| !r.iter().any(|&b| b == b'\\' || b < 0x20));
        match inner.map(std::str::from_utf8) {
            Some(Ok(s)) => Ok(s.to_owned()),
            _ => from_raw(&raw, at, "a key"),
        }
    }

    /// After an object's `{`: the next key and its `:`, or `None` at the
    /// closing `}`. `first` is true until the first key. One of `known` is
    /// returned as that `&'static str`, without a copy.
    pub(super) fn next_known_key(
        &mut self,
        first: &mut bool,
        known: &[&'static str],
    ) -> Result<Option<Cow<'static, str>>> {
        if !self.key_ahead(first)? {
            return Ok(None);
        }
        let plain = self.plain_str(|s| {
            Some(match known.iter().find(|&&k| k == s) {
                Some(&k) => Cow::Borrowed(k),
                None => Cow::Owned(s.to_owned()),
            })
        })?;
        let key = match plain {
            Some(key) => key,
            None => Cow::Owned(self.string()?),
        };
        self.expect(b':', "an object")?;
        Ok(Some(key))
    }

    /// After an object's `{`: the next key and its `:`, or `None` at the
    /// closing `}`. `first` is true until the first key.
    pub(super) fn next_key(&mut self, first: &mut bool) -> Result<Option<String>> {
        if !self.key_ahead(first)? {
            return Ok(None);
        }
        let key = self.string()?;
        self.expect(b':', "an object")?;
        Ok(Some(key))
    }

    /// After an object's `{` or a value in it: whether a key follows (the
    /// `,` before it consumed), or the object's `}` (consumed).
    fn key_ahead(&mut self, first: &mut bool) -> Result<bool> {
        if !*first {
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(false);
                }
                Some(_) => return Err(syntax("expected `,` or `}`", self.offset())),
                None => return Err(early_end("an object")),
            }
        }
        match self.peek()? {
            Some(b'"') => {}
            Some(b'}') if *first => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b'}') => return Err(syntax("trailing comma", self.offset())),
            Some(_) => return Err(syntax("expected a string key", self.offset())),
            None => return Err(early_end("an object")),
        }
        *first = false;
        Ok(true)
    }

    /// Consumes the `{` of an object, or fails with `expected`.
    pub(super) fn open_object(&mut self, expected: &'static str) -> Result<()> {
        match self.peek()? {
            Some(b'{') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(wrong_type(expected, self.offset())),
            None => Err(early_end("a value")),
        }
    }

    /// Reads the model, handing each tensor to `take` in file order as
    /// soon as it is read and hashed; the model returned holds none.
    pub(super) fn model(
        &mut self,
        take: &mut dyn FnMut(JsonTensor) -> Result<()>,
    ) -> Result<JsonModel> {
        self.open_object("a modeltool.json/1 object")?;
        let mut format = false;
        let mut metadata = None;
        let mut architecture: Option<serde_json::Value> = None;
        let mut tensors = false;
        let mut first = true;
        while let Some(key) = self.next_known_key(&mut first, MODEL_KEYS)? {
            match key.as_ref() {
                "format" if !format => {
                    let (raw, at) = self.capture(1)?;
                    let f: String = from_raw(&raw, at, "format")?;
                    if f != FORMAT_ID {
                        return Err(err(JsonErrorKind::WrongFormat { found: f }));
                    }
                    format = true;
                }
                "metadata" if metadata.is_none() => {
                    let (raw, at) = self.capture(1)?;
                    metadata = Some(seed_from_raw(
                        StringMap("`metadata`"),
                        &raw,
                        at,
                        "metadata",
                    )?);
                }
                "architecture" if architecture.is_none() => {
                    let (raw, at) = self.capture(1)?;
                    architecture = Some(
                        crate::strict_json::from_slice(&raw)
                            .map_err(|e| serde_error(e, at, "architecture"))?,
                    );
                }
                "tensors" if !tensors => {
                    self.tensors(take)?;
                    tensors = true;
                }
                _ => return Err(key_error(key.into_owned(), MODEL_KEYS)),
            }
        }
        if self.peek()?.is_some() {
            return Err(syntax("trailing characters", self.offset()));
        }
        if !format {
            return Err(missing("format"));
        }
        if !tensors {
            return Err(missing("tensors"));
        }
        Ok(JsonModel {
            metadata: metadata.unwrap_or_default(),
            architecture: architecture.filter(|a| !a.is_null()),
            tensors: Vec::new(),
        })
    }

    /// Reads the tensor object named `name`, tensor number `batch` of the
    /// file when its values may go to the batch (then the tensor has no
    /// data yet, and the answer says so). An error names the tensor, and
    /// comes with the name.
    pub(super) fn tensor(
        &mut self,
        name: String,
        batch: Option<usize>,
    ) -> Result<(JsonTensor, bool), (FormatError, String)> {
        match self.tensor_fields(batch) {
            Ok(fields) => match finish_tensor(name, fields) {
                Ok(t) => Ok(t),
                Err((e, name)) => Err((in_tensor(e, &name), name)),
            },
            Err(e) => Err((in_tensor(e, &name), name)),
        }
    }

    /// The fields of a tensor object: dtype, shape, the data's bytes and
    /// element count, and the stored checksum.
    fn tensor_fields(&mut self, batch: Option<usize>) -> Result<Fields> {
        self.open_object("an object with dtype, shape, data and sha256")?;
        let mut dtype: Option<Dtype> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut data: Option<Values> = None;
        let mut deferred: Option<(Vec<u8>, u64)> = None;
        let mut sha256: Option<Checksum> = None;
        let mut first = true;
        while let Some(key) = self.next_known_key(&mut first, TENSOR_KEYS)? {
            match key.as_ref() {
                "dtype" if dtype.is_none() => {
                    // Nearly always a plain name: no serde, no copy.
                    if let Some(d) = self.plain_str(|s| s.parse().ok())? {
                        dtype = Some(d);
                        continue;
                    }
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "dtype")?;
                    match s.parse() {
                        Ok(d) => dtype = Some(d),
                        Err(_) => return Err(err(JsonErrorKind::UnknownDtype { dtype: s })),
                    }
                }
                "shape" if shape.is_none() => {
                    if let Some(s) = self.plain_shape()? {
                        shape = Some(s);
                        continue;
                    }
                    let (raw, at) = self.capture(3)?;
                    shape = Some(from_raw(&raw, at, "shape")?);
                }
                // With the dtype known, values stream straight into bytes;
                // otherwise (keys in another order) the raw text waits.
                "data" if data.is_none() && deferred.is_none() => match dtype {
                    Some(d) => {
                        let limit = limit(shape.as_deref());
                        data = Some(match batch {
                            Some(index) if self.batch_data(index, d, limit)? => Values::Batched,
                            _ => {
                                let (bytes, count) = self.data(d, limit)?;
                                Values::Parsed(bytes, count)
                            }
                        });
                    }
                    None => deferred = Some(self.capture(3)?),
                },
                "sha256" if sha256.is_none() => {
                    if let Some(sum) = self.plain_str(Checksum::from_hex)? {
                        sha256 = Some(sum);
                        continue;
                    }
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "sha256")?;
                    match Checksum::from_hex(&s) {
                        Some(sum) => sha256 = Some(sum),
                        None => return Err(err(JsonErrorKind::BadSha256 { found: s })),
                    }
                }
                _ => return Err(key_error(key.into_owned(), TENSOR_KEYS)),
            }
        }
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let values = match (data, deferred) {
            (Some(d), _) => d,
            (None, Some((raw, at))) => {
                let mut sub = Reader::new(&raw[..], at, Some(at + raw.len() as u64));
                let (bytes, count) = sub.data(dtype, limit(Some(&shape)))?;
                if sub.peek()?.is_some() {
                    return Err(syntax("trailing characters", sub.offset()));
                }
                Values::Parsed(bytes, count)
            }
            (None, None) => return Err(missing("data")),
        };
        Ok((dtype, shape, values, sha256))
    }

    /// A shape written the plain way (`[` unsigned integers without leading
    /// zeros, separated by commas, `]`, at most 8 of them) that ends in
    /// the window, consumed; `None` with nothing consumed otherwise, for
    /// serde_json to read and judge.
    fn plain_shape(&mut self) -> Result<Option<Vec<usize>>> {
        if self.peek()? != Some(b'[') {
            return Ok(None);
        }
        let s = &self.buf[self.pos..self.end];
        let mut dims = [0usize; 8];
        let mut n = 0;
        let mut i = skip_ws(s, 1);
        if s.get(i) == Some(&b']') {
            self.pos += i + 1;
            return Ok(Some(Vec::new()));
        }
        loop {
            let start = i;
            let mut d = 0usize;
            while let Some(&b) = s.get(i).filter(|b| b.is_ascii_digit()) {
                let Some(next) = d
                    .checked_mul(10)
                    .and_then(|d| d.checked_add((b - b'0') as usize))
                else {
                    return Ok(None);
                };
                d = next;
                i += 1;
            }
            let digits = i - start;
            if digits == 0 || (digits > 1 && s[start] == b'0') || n == dims.len() {
                return Ok(None);
            }
            dims[n] = d;
            n += 1;
            i = skip_ws(s, i);
            match s.get(i) {
                Some(b',') => i = skip_ws(s, i + 1),
                Some(b']') => {
                    self.pos += i + 1;
                    return Ok(Some(dims[..n].to_vec()));
                }
                _ => return Ok(None),
            }
        }
    }

    /// Reads a `data` array into little-endian bytes (one code byte per
    /// element for packed types); returns the bytes and the element count.
    pub(super) fn data(&mut self, dtype: Dtype, limit: Option<usize>) -> Result<(Vec<u8>, usize)> {
        match self.peek()? {
            Some(b'[') => self.pos += 1,
            Some(_) => {
                return Err(wrong_type(
                    "`data` to be a flat array of values",
                    self.offset(),
                ));
            }
            None => return Err(early_end("a value")),
        }
        let per = dtype.bits().div_ceil(8);
        // Never trust a shape for the allocation size: the whole buffer is
        // allocated up front only when the rest of the input could hold
        // that many values (two bytes each, with the commas).
        let rest = self.input_end.map(|end| end.saturating_sub(self.offset()));
        let mut out = match (limit, rest) {
            (Some(l), Some(rest))
                if (l as u64).saturating_mul(2) <= rest.saturating_add(1)
                    && l * per >= PARALLEL_MIN =>
            {
                TensorBuf::sized(l * per)
            }
            _ => TensorBuf::growing(limit.unwrap_or(0).min(1 << 24) * per),
        };
        let mut tail = Vec::new();
        let mut count = 0usize;
        match self.peek()? {
            Some(b']') => {
                self.pos += 1;
                return Ok((out.into_vec(), 0));
            }
            None => return Err(early_end("a list")),
            Some(_) => {}
        }
        // Bytes to have in the window when it is refilled. The window is
        // refilled only when the array goes on past its end: a small array
        // that ends inside it (a file of many small tensors) costs no copy,
        // so the work per tensor is bounded by its own bytes.
        let mut want = self.window;
        let mut refill = false;
        loop {
            if !self.eof
                && (refill
                    || (self.end - self.pos < PARALLEL_MIN
                        && memchr(b']', &self.buf[self.pos..self.end]).is_none()))
            {
                self.fill(want)?;
            }
            let at = self.offset();
            // The bulk: every complete element before the window's last
            // comma (and before the array's end), in parallel pieces.
            if dtype != Dtype::C64 && self.end - self.pos >= PARALLEL_MIN {
                let stop = self.first_close();
                if stop >= PARALLEL_MIN
                    && let Some(cut) = memrchr(b',', &self.buf[self.pos..self.pos + stop])
                {
                    if stop < self.end - self.pos || self.eof {
                        // The array ends in this window: nothing to read on.
                        count += self.parse_in_place(cut, dtype, &mut out, count)?;
                    } else {
                        count += self.parse_window(cut, dtype, &mut out, count)?;
                    }
                    check_limit(count, limit)?;
                    // The window holds more elements, or was read on while
                    // this one was parsed.
                    refill = false;
                    continue;
                }
            }
            let avail = &self.buf[self.pos..self.end];
            // The rest, one element after another.
            let eof = self.eof;
            let step = out
                .append_with(&mut tail, |v| stream_elements(avail, dtype, v, eof))
                .map_err(|e| e.into_read_error(count, at))?;
            count += step.count;
            self.pos += step.consumed;
            check_limit(count, limit)?;
            if step.done {
                return Ok((out.into_vec(), count));
            }
            // Every whole element of the window is parsed: read on.
            refill = true;
            if step.consumed == 0 {
                // One element longer than the window: look further.
                want = (self.end - self.pos).max(want) * 2;
                if want > MAX_ELEMENT {
                    return Err(err(JsonErrorKind::ElementTooLong {
                        index: count,
                        max: MAX_ELEMENT,
                    }));
                }
            } else {
                want = self.window;
            }
        }
    }
}

/// A tensor object's fields as read: dtype, shape, values and the stored
/// checksum.
type Fields = (Dtype, Vec<usize>, Values, Option<Checksum>);

/// A tensor's values as read.
enum Values {
    /// Its bytes and element count.
    Parsed(Vec<u8>, usize),
    /// Its text went to the batch.
    Batched,
}

/// The tensor named `name` from its fields, its values counted against
/// its shape (once they are parsed), and whether they are in the batch. An
/// error comes with the name.
fn finish_tensor(
    name: String,
    (dtype, shape, values, sha256): Fields,
) -> Result<(JsonTensor, bool), (FormatError, String)> {
    let meta = TensorMeta { name, dtype, shape };
    let data = || match values {
        Values::Parsed(bytes, count) => {
            check_count(&meta, count)?;
            Ok(Some(match dtype {
                Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                    meta.byte_len()?;
                    values::pack(&bytes, dtype.bits())
                }
                _ => bytes,
            }))
        }
        Values::Batched => meta.element_count().map(|_| None),
    };
    match data() {
        Ok(data) => {
            let batched = data.is_none();
            let tensor = JsonTensor {
                meta,
                data: data.unwrap_or_default(),
                sha256,
                actual_sha256: [0; 32],
            };
            Ok((tensor, batched))
        }
        Err(e) => Err((e, meta.name)),
    }
}

/// That a tensor has as many values as its shape says.
pub(super) fn check_count(meta: &TensorMeta, count: usize) -> Result<()> {
    let expected = meta.element_count()?;
    if count != expected {
        return Err(err(JsonErrorKind::CountMismatch {
            count,
            shape: meta.shape.clone(),
            expected,
        }));
    }
    Ok(())
}

pub(super) fn check_limit(count: usize, limit: Option<usize>) -> Result<()> {
    match limit {
        Some(l) if count > l => Err(err(JsonErrorKind::TooManyValues { limit: l })),
        _ => Ok(()),
    }
}

/// How many values the shape allows, when the shape is already known; more
/// values than that stop the read.
pub(super) fn limit(shape: Option<&[usize]>) -> Option<usize> {
    shape.and_then(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)))
}
