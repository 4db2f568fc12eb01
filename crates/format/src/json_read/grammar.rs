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

    /// Reads a string (the next value must be one).
    pub(super) fn string(&mut self) -> Result<String> {
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
    /// closing `}`. `first` is true until the first key.
    pub(super) fn next_key(&mut self, first: &mut bool) -> Result<Option<String>> {
        if !*first {
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(None);
                }
                Some(_) => return Err(syntax("expected `,` or `}`", self.offset())),
                None => return Err(early_end("an object")),
            }
        }
        match self.peek()? {
            Some(b'"') => {}
            Some(b'}') if *first => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b'}') => return Err(syntax("trailing comma", self.offset())),
            Some(_) => return Err(syntax("expected a string key", self.offset())),
            None => return Err(early_end("an object")),
        }
        *first = false;
        let key = self.string()?;
        self.expect(b':', "an object")?;
        Ok(Some(key))
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
        while let Some(key) = self.next_key(&mut first)? {
            match key.as_str() {
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
                _ => return Err(key_error(key, MODEL_KEYS)),
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

    /// Reads the tensors and hands each to `take`, in file order; each
    /// large one is hashed on another core while the next is parsed, small
    /// ones here (a task per tensor would cost more than its hash). A
    /// tensor waits for its hash, and those after it wait for it: the
    /// hash of one tensor runs faster than the parse of the next, so few
    /// wait.
    pub(super) fn tensors(&mut self, take: &mut dyn FnMut(JsonTensor) -> Result<()>) -> Result<()> {
        self.open_object("`tensors` to be an object mapping names to tensors")?;
        let (done, hashed) = mpsc::channel();
        // Read but not yet handed over, with whether the hash is in; the
        // first is tensor number `handed` of the file.
        let mut waiting: VecDeque<(JsonTensor, bool)> = VecDeque::new();
        let mut handed = 0usize;
        let mut hand_over = |waiting: &mut VecDeque<(JsonTensor, bool)>,
                             handed: &mut usize,
                             results: &mut dyn Iterator<Item = (usize, Vec<u8>, [u8; 32])>|
         -> Result<()> {
            for (index, data, sum) in results {
                let (tensor, ready) = &mut waiting[index - *handed];
                tensor.data = data;
                tensor.actual_sha256 = sum;
                *ready = true;
            }
            while waiting.front().is_some_and(|(_, ready)| *ready) {
                let (tensor, _) = waiting.pop_front().expect("a front");
                *handed += 1;
                take(tensor)?;
            }
            Ok(())
        };
        let read = par::scope(|scope| {
            let mut first = true;
            while let Some(name) = self.next_key(&mut first)? {
                let mut tensor = self.tensor(&name).map_err(|e| in_tensor(e, &name))?;
                let index = handed + waiting.len();
                if tensor.data.len() < HASH_INLINE || !par::BACKGROUND {
                    tensor.actual_sha256 = Sha256::digest(&tensor.data).into();
                    waiting.push_back((tensor, true));
                } else {
                    let done = done.clone();
                    let data = std::mem::take(&mut tensor.data);
                    scope.spawn(move || {
                        let sum: [u8; 32] = Sha256::digest(&data).into();
                        // The receiver is gone only when reading failed.
                        let _ = done.send((index, data, sum));
                    });
                    waiting.push_back((tensor, false));
                }
                hand_over(&mut waiting, &mut handed, &mut hashed.try_iter())?;
            }
            Ok::<_, FormatError>(())
        });
        drop(done);
        read?;
        // Every hash is in once the scope has ended.
        hand_over(&mut waiting, &mut handed, &mut hashed.try_iter())?;
        debug_assert!(waiting.is_empty(), "every hash was sent");
        Ok(())
    }

    pub(super) fn tensor(&mut self, name: &str) -> Result<JsonTensor> {
        self.open_object("an object with dtype, shape, data and sha256")?;
        let mut dtype: Option<Dtype> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut data: Option<(Vec<u8>, usize)> = None;
        let mut deferred: Option<(Vec<u8>, u64)> = None;
        let mut sha256: Option<String> = None;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match key.as_str() {
                "dtype" if dtype.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "dtype")?;
                    match s.parse() {
                        Ok(d) => dtype = Some(d),
                        Err(_) => return Err(err(JsonErrorKind::UnknownDtype { dtype: s })),
                    }
                }
                "shape" if shape.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    shape = Some(from_raw(&raw, at, "shape")?);
                }
                // With the dtype known, values stream straight into bytes;
                // otherwise (keys in another order) the raw text waits.
                "data" if data.is_none() && deferred.is_none() => match dtype {
                    Some(d) => data = Some(self.data(d, limit(shape.as_deref()))?),
                    None => deferred = Some(self.capture(3)?),
                },
                "sha256" if sha256.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "sha256")?;
                    if !is_sha256_hex(&s) {
                        return Err(err(JsonErrorKind::BadSha256 { found: s }));
                    }
                    sha256 = Some(s);
                }
                _ => return Err(key_error(key, TENSOR_KEYS)),
            }
        }
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let (bytes, count) = match (data, deferred) {
            (Some(d), _) => d,
            (None, Some((raw, at))) => {
                let mut sub = Reader::new(&raw[..], at, Some(at + raw.len() as u64));
                let d = sub.data(dtype, limit(Some(&shape)))?;
                if sub.peek()?.is_some() {
                    return Err(syntax("trailing characters", sub.offset()));
                }
                d
            }
            (None, None) => return Err(missing("data")),
        };
        let meta = TensorMeta {
            name: name.to_owned(),
            dtype,
            shape,
        };
        let expected = meta.element_count()?;
        if count != expected {
            return Err(err(JsonErrorKind::CountMismatch {
                count,
                shape: meta.shape,
                expected,
            }));
        }
        let data = match dtype {
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                meta.byte_len()?;
                values::pack(&bytes, dtype.bits())
            }
            _ => bytes,
        };
        Ok(JsonTensor {
            meta,
            data,
            sha256,
            actual_sha256: [0; 32],
        })
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
            (Some(l), Some(rest)) if (l as u64).saturating_mul(2) <= rest.saturating_add(1) => {
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
            tail.clear();
            let step = stream_elements(avail, dtype, &mut tail, self.eof)
                .map_err(|e| e.into_read_error(count, at))?;
            out.append(&tail);
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
