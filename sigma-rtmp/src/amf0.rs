//! AMF0 values (AMF0 File Format Specification, Adobe, 2007), with AMF3 values read where a
//! client switches to AMF3 inside an AMF0 stream (the `avmplus-object` marker, AMF0 §2.20, and
//! the AMF3 data/command message types of RTMP 1.0 §7.1.2/§7.1.1).
//!
//! Decoding is bounded: nesting deeper than [`AmfLimits::max_depth`] and more than
//! [`AmfLimits::max_values`] decoded values (counting values copied through AMF3 references)
//! are errors, never a stack overflow or an allocation blow-up. Every read is bounds-checked;
//! untrusted input cannot panic the decoder.
//!
//! AMF0 references (marker 0x07) and the AMF3 XML, vector and dictionary types are refused with
//! an error: no RTMP publisher we know sends them.

use crate::Error;
use bytes::{BufMut, BytesMut};

/// One AMF value. AMF3 values are mapped onto the same variants (an AMF3 integer becomes a
/// [`Value::Number`], an AMF3 array a [`Value::StrictArray`] or [`Value::EcmaArray`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// AMF0 number (§2.2): an IEEE-754 double.
    Number(f64),
    /// AMF0 boolean (§2.3).
    Boolean(bool),
    /// AMF0 string or long string (§2.4, §2.14), decoded as UTF-8 (invalid sequences replaced).
    String(String),
    /// AMF0 anonymous object (§2.5): properties in wire order.
    Object(Vec<(String, Value)>),
    /// AMF0 null (§2.7).
    Null,
    /// AMF0 undefined (§2.8).
    Undefined,
    /// AMF0 ECMA array (§2.10): an associative array, properties in wire order.
    EcmaArray(Vec<(String, Value)>),
    /// AMF0 strict array (§2.12).
    StrictArray(Vec<Value>),
    /// AMF0 date (§2.13): milliseconds since the epoch and a (reserved) time zone.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Time zone offset; should be 0.
        timezone: i16,
    },
    /// AMF0 XML document (§2.17).
    XmlDocument(String),
    /// AMF0 typed object (§2.18).
    TypedObject {
        /// Class name.
        class: String,
        /// Properties in wire order.
        properties: Vec<(String, Value)>,
    },
    /// AMF3 byte array (AMF3 §3.14); encoded with the `avmplus-object` marker.
    ByteArray(Vec<u8>),
}

impl Value {
    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, when this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties, when this is an object, typed object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The value of property `name`, when this is an object-like value that has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A string property, for command parsing.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// An anonymous object built from `(name, value)` pairs.
    pub fn object<'a>(props: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// Bounds on decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmfLimits {
    /// Deepest nesting of objects and arrays.
    pub max_depth: usize,
    /// Most values decoded from one buffer, counting every value copied by an AMF3 reference.
    pub max_values: usize,
}

impl Default for AmfLimits {
    /// Depth 32 and 65,536 values: a metadata object has a few dozen.
    fn default() -> Self {
        AmfLimits {
            max_depth: 32,
            max_values: 65_536,
        }
    }
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const MOVIECLIP: u8 = 0x04;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const RECORDSET: u8 = 0x0E;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// Decodes every value in `data` (a command or data message body).
pub fn decode_all(data: &[u8], limits: AmfLimits) -> Result<Vec<Value>, Error> {
    let mut d = Decoder::new(data, limits);
    let mut out = Vec::new();
    while !d.at_end() {
        out.push(d.value()?);
    }
    Ok(out)
}

/// Decodes one AMF0 value from the front of `data`; returns it and the bytes it used.
pub fn decode_one(data: &[u8], limits: AmfLimits) -> Result<(Value, usize), Error> {
    let mut d = Decoder::new(data, limits);
    let v = d.value()?;
    Ok((v, d.pos))
}

/// Appends the AMF0 encoding of `value` to `out` (AMF0 §2). Strings longer than 65,535 bytes
/// use the long-string marker; a [`Value::ByteArray`] switches to AMF3 for that value.
pub fn encode(value: &Value, out: &mut BytesMut) {
    match value {
        Value::Number(n) => {
            out.put_u8(NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) => {
            if s.len() > usize::from(u16::MAX) {
                out.put_u8(LONG_STRING);
                put_long_str(s, out);
            } else {
                out.put_u8(STRING);
                put_str(s, out);
            }
        }
        Value::Object(props) => {
            out.put_u8(OBJECT);
            put_props(props, out);
        }
        Value::Null => out.put_u8(NULL),
        Value::Undefined => out.put_u8(UNDEFINED),
        Value::EcmaArray(props) => {
            out.put_u8(ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_props(props, out);
        }
        Value::StrictArray(items) => {
            out.put_u8(STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for v in items {
                encode(v, out);
            }
        }
        Value::Date { millis, timezone } => {
            out.put_u8(DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Value::XmlDocument(s) => {
            out.put_u8(XML_DOCUMENT);
            put_long_str(s, out);
        }
        Value::TypedObject { class, properties } => {
            out.put_u8(TYPED_OBJECT);
            put_str(class, out);
            put_props(properties, out);
        }
        Value::ByteArray(b) => {
            out.put_u8(AVMPLUS);
            out.put_u8(amf3::BYTE_ARRAY);
            amf3::put_u29(((b.len() as u32) << 1) | 1, out);
            out.put_slice(b);
        }
    }
}

/// Encodes a sequence of values (a command: name, transaction id, command object, arguments).
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Value>, out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

fn put_str(s: &str, out: &mut BytesMut) {
    // Strings above 65,535 bytes cannot be a property name or short string; truncate at a
    // character boundary rather than write a wrong length.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

fn put_long_str(s: &str, out: &mut BytesMut) {
    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.put_slice(s.as_bytes());
}

fn put_props(props: &[(String, Value)], out: &mut BytesMut) {
    for (k, v) in props {
        if k.is_empty() {
            // An empty name would read as the object end; such a property cannot be encoded.
            continue;
        }
        put_str(k, out);
        encode(v, out);
    }
    out.put_u16(0);
    out.put_u8(OBJECT_END);
}

pub(crate) struct Decoder<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    limits: AmfLimits,
    depth: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(data: &'a [u8], limits: AmfLimits) -> Self {
        Decoder {
            data,
            pos: 0,
            limits,
            depth: 0,
            values: 0,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn err(&self, reason: &'static str) -> Error {
        Error::Amf {
            reason,
            pos: self.pos,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.data.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, Error> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn count(&mut self, n: usize) -> Result<(), Error> {
        self.values = self.values.saturating_add(n);
        if self.values > self.limits.max_values {
            return Err(Error::AmfTooManyValues {
                limit: self.limits.max_values,
                pos: self.pos,
            });
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(Error::AmfTooDeep {
                limit: self.limits.max_depth,
                pos: self.pos,
            });
        }
        Ok(())
    }

    fn utf8(&mut self, n: usize, what: &'static str) -> Result<String, Error> {
        let b = self.take(n, what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn short_string(&mut self) -> Result<String, Error> {
        let n = self.u16("truncated string length")?;
        self.utf8(usize::from(n), "truncated string")
    }

    fn long_string(&mut self) -> Result<String, Error> {
        let n = self.u32("truncated long string length")?;
        self.utf8(n as usize, "truncated long string")
    }

    /// Properties up to and including the object-end marker.
    fn properties(&mut self) -> Result<Vec<(String, Value)>, Error> {
        self.enter()?;
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() {
                // Some encoders end an ECMA array at the end of the buffer without the marker.
                if self.at_end() {
                    break;
                }
                let m = self.u8("truncated object end")?;
                if m != OBJECT_END {
                    return Err(Error::Amf {
                        reason: "empty property name not followed by object end",
                        pos: self.pos - 1,
                    });
                }
                break;
            }
            let v = self.value()?;
            props.push((key, v));
        }
        self.depth -= 1;
        Ok(props)
    }

    pub(crate) fn value(&mut self) -> Result<Value, Error> {
        self.count(1)?;
        let at = self.pos;
        let marker = self.u8("missing type marker")?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64("truncated number")?),
            BOOLEAN => Value::Boolean(self.u8("truncated boolean")? != 0),
            STRING => Value::String(self.short_string()?),
            OBJECT => Value::Object(self.properties()?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            ECMA_ARRAY => {
                let _count = self.u32("truncated ECMA array count")?;
                Value::EcmaArray(self.properties()?)
            }
            STRICT_ARRAY => {
                let n = self.u32("truncated strict array count")? as usize;
                // Each element takes at least one byte: a count beyond the remaining bytes is a
                // lie, and checking it first keeps the allocation bounded by the input.
                if n > self.data.len() - self.pos {
                    return Err(Error::Amf {
                        reason: "strict array count larger than the remaining data",
                        pos: at,
                    });
                }
                self.enter()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value()?);
                }
                self.depth -= 1;
                Value::StrictArray(items)
            }
            DATE => {
                let millis = self.f64("truncated date")?;
                let tz = self.u16("truncated date time zone")? as i16;
                Value::Date {
                    millis,
                    timezone: tz,
                }
            }
            LONG_STRING => Value::String(self.long_string()?),
            XML_DOCUMENT => Value::XmlDocument(self.long_string()?),
            TYPED_OBJECT => {
                let class = self.short_string()?;
                let properties = self.properties()?;
                Value::TypedObject { class, properties }
            }
            AVMPLUS => {
                let mut a3 = amf3::Decoder::default();
                self.enter()?;
                let v = a3.value(self)?;
                self.depth -= 1;
                v
            }
            REFERENCE => {
                return Err(Error::Amf {
                    reason: "AMF0 references are not supported",
                    pos: at,
                });
            }
            MOVIECLIP | UNSUPPORTED | RECORDSET | OBJECT_END => {
                return Err(Error::Amf {
                    reason: "reserved or unsupported AMF0 type marker",
                    pos: at,
                });
            }
            _ => {
                return Err(Error::Amf {
                    reason: "unknown AMF0 type marker",
                    pos: at,
                });
            }
        })
    }
}

/// AMF3 (AMF 3 Specification, Adobe, 2013), read only inside AMF0 data through the
/// `avmplus-object` marker. References copy the referenced value, counted against the limit.
mod amf3 {
    use super::{Decoder as Amf0, Value};
    use crate::Error;
    use bytes::{BufMut, BytesMut};

    const UNDEFINED: u8 = 0x00;
    const NULL: u8 = 0x01;
    const FALSE: u8 = 0x02;
    const TRUE: u8 = 0x03;
    const INTEGER: u8 = 0x04;
    const DOUBLE: u8 = 0x05;
    const STRING: u8 = 0x06;
    const DATE: u8 = 0x08;
    const ARRAY: u8 = 0x09;
    const OBJECT: u8 = 0x0A;
    pub(super) const BYTE_ARRAY: u8 = 0x0C;

    struct Traits {
        class: String,
        dynamic: bool,
        sealed: Vec<String>,
    }

    /// Reference tables of one AMF3 value graph (AMF3 §2.2).
    #[derive(Default)]
    pub(super) struct Decoder {
        strings: Vec<String>,
        /// Complex values in the order they started (AMF3 §2.2); `None` while being decoded.
        objects: Vec<Option<Value>>,
        traits: Vec<std::rc::Rc<Traits>>,
    }

    pub(super) fn put_u29(v: u32, out: &mut BytesMut) {
        let v = v & 0x1FFF_FFFF;
        if v < 0x80 {
            out.put_u8(v as u8);
        } else if v < 0x4000 {
            out.put_u8(((v >> 7) | 0x80) as u8);
            out.put_u8((v & 0x7F) as u8);
        } else if v < 0x20_0000 {
            out.put_u8(((v >> 14) | 0x80) as u8);
            out.put_u8(((v >> 7) | 0x80) as u8);
            out.put_u8((v & 0x7F) as u8);
        } else {
            out.put_u8(((v >> 22) | 0x80) as u8);
            out.put_u8(((v >> 15) | 0x80) as u8);
            out.put_u8(((v >> 8) | 0x80) as u8);
            out.put_u8(v as u8);
        }
    }

    fn size(v: &Value) -> usize {
        match v {
            Value::Object(p) | Value::EcmaArray(p) => {
                1 + p.iter().map(|(_, v)| size(v)).sum::<usize>()
            }
            Value::TypedObject { properties, .. } => {
                1 + properties.iter().map(|(_, v)| size(v)).sum::<usize>()
            }
            Value::StrictArray(items) => 1 + items.iter().map(size).sum::<usize>(),
            _ => 1,
        }
    }

    impl Decoder {
        fn u29(&self, r: &mut Amf0<'_>) -> Result<u32, Error> {
            let mut v: u32 = 0;
            for i in 0..4 {
                let b = r.u8("truncated AMF3 U29")?;
                if i == 3 {
                    return Ok((v << 8) | u32::from(b));
                }
                v = (v << 7) | u32::from(b & 0x7F);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Ok(v)
        }

        fn string(&mut self, r: &mut Amf0<'_>) -> Result<String, Error> {
            let at = r.pos;
            let h = self.u29(r)?;
            if h & 1 == 0 {
                return self
                    .strings
                    .get((h >> 1) as usize)
                    .cloned()
                    .ok_or(Error::Amf {
                        reason: "AMF3 string reference out of range",
                        pos: at,
                    });
            }
            let s = r.utf8((h >> 1) as usize, "truncated AMF3 string")?;
            if !s.is_empty() {
                self.strings.push(s.clone());
            }
            Ok(s)
        }

        fn reference(&mut self, r: &mut Amf0<'_>, h: u32, at: usize) -> Result<Value, Error> {
            let v = match self.objects.get((h >> 1) as usize) {
                Some(Some(v)) => v.clone(),
                Some(None) => {
                    return Err(Error::Amf {
                        reason: "cyclic AMF3 object reference",
                        pos: at,
                    });
                }
                None => {
                    return Err(Error::Amf {
                        reason: "AMF3 object reference out of range",
                        pos: at,
                    });
                }
            };
            r.count(size(&v))?;
            Ok(v)
        }

        pub(super) fn value(&mut self, r: &mut Amf0<'_>) -> Result<Value, Error> {
            let at = r.pos;
            let marker = r.u8("missing AMF3 type marker")?;
            Ok(match marker {
                UNDEFINED => Value::Undefined,
                NULL => Value::Null,
                FALSE => Value::Boolean(false),
                TRUE => Value::Boolean(true),
                INTEGER => {
                    let u = self.u29(r)?;
                    // Sign-extend the 29-bit integer.
                    let i = ((u << 3) as i32) >> 3;
                    Value::Number(f64::from(i))
                }
                DOUBLE => Value::Number(r.f64("truncated AMF3 double")?),
                STRING => Value::String(self.string(r)?),
                DATE => {
                    let h = self.u29(r)?;
                    if h & 1 == 0 {
                        return self.reference(r, h, at);
                    }
                    let millis = r.f64("truncated AMF3 date")?;
                    let v = Value::Date {
                        millis,
                        timezone: 0,
                    };
                    self.objects.push(Some(v.clone()));
                    v
                }
                BYTE_ARRAY => {
                    let h = self.u29(r)?;
                    if h & 1 == 0 {
                        return self.reference(r, h, at);
                    }
                    let b = r.take((h >> 1) as usize, "truncated AMF3 byte array")?;
                    let v = Value::ByteArray(b.to_vec());
                    self.objects.push(Some(v.clone()));
                    v
                }
                ARRAY => {
                    let h = self.u29(r)?;
                    if h & 1 == 0 {
                        return self.reference(r, h, at);
                    }
                    let dense = (h >> 1) as usize;
                    let slot = self.objects.len();
                    self.objects.push(None);
                    r.enter()?;
                    let mut assoc = Vec::new();
                    loop {
                        let k = self.string(r)?;
                        if k.is_empty() {
                            break;
                        }
                        r.count(1)?;
                        let v = self.value(r)?;
                        assoc.push((k, v));
                    }
                    if dense > r.data.len() - r.pos {
                        return Err(Error::Amf {
                            reason: "AMF3 array count larger than the remaining data",
                            pos: at,
                        });
                    }
                    let mut items = Vec::with_capacity(dense);
                    for _ in 0..dense {
                        r.count(1)?;
                        items.push(self.value(r)?);
                    }
                    r.depth -= 1;
                    let v = if assoc.is_empty() {
                        Value::StrictArray(items)
                    } else {
                        for (i, v) in items.into_iter().enumerate() {
                            assoc.push((i.to_string(), v));
                        }
                        Value::EcmaArray(assoc)
                    };
                    self.objects[slot] = Some(v.clone());
                    v
                }
                OBJECT => {
                    let h = self.u29(r)?;
                    if h & 1 == 0 {
                        return self.reference(r, h, at);
                    }
                    let slot = self.objects.len();
                    self.objects.push(None);
                    let traits = if h & 2 == 0 {
                        self.traits
                            .get((h >> 2) as usize)
                            .cloned()
                            .ok_or(Error::Amf {
                                reason: "AMF3 traits reference out of range",
                                pos: at,
                            })?
                    } else {
                        if h & 4 != 0 {
                            return Err(Error::Amf {
                                reason: "AMF3 externalizable objects are not supported",
                                pos: at,
                            });
                        }
                        let dynamic = h & 8 != 0;
                        let n = (h >> 4) as usize;
                        let class = self.string(r)?;
                        if n > r.data.len() - r.pos {
                            return Err(Error::Amf {
                                reason: "AMF3 sealed member count larger than the remaining data",
                                pos: at,
                            });
                        }
                        let mut sealed = Vec::with_capacity(n);
                        for _ in 0..n {
                            sealed.push(self.string(r)?);
                        }
                        let t = std::rc::Rc::new(Traits {
                            class,
                            dynamic,
                            sealed,
                        });
                        self.traits.push(t.clone());
                        t
                    };
                    r.enter()?;
                    let mut props = Vec::new();
                    for name in &traits.sealed {
                        r.count(1)?;
                        let v = self.value(r)?;
                        props.push((name.clone(), v));
                    }
                    if traits.dynamic {
                        loop {
                            let k = self.string(r)?;
                            if k.is_empty() {
                                break;
                            }
                            r.count(1)?;
                            let v = self.value(r)?;
                            props.push((k, v));
                        }
                    }
                    r.depth -= 1;
                    let v = if traits.class.is_empty() {
                        Value::Object(props)
                    } else {
                        Value::TypedObject {
                            class: traits.class.clone(),
                            properties: props,
                        }
                    };
                    self.objects[slot] = Some(v.clone());
                    v
                }
                _ => {
                    return Err(Error::Amf {
                        reason: "unsupported AMF3 type marker",
                        pos: at,
                    });
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &Value) -> Value {
        let mut b = BytesMut::new();
        encode(v, &mut b);
        let (got, used) = decode_one(&b, AmfLimits::default()).unwrap();
        assert_eq!(used, b.len());
        got
    }

    #[test]
    fn connect_command_bytes() {
        // "connect", 1.0, {app: "live"} as ffmpeg writes it.
        let mut b = BytesMut::new();
        encode_all(
            &[
                Value::string("connect"),
                Value::Number(1.0),
                Value::object([("app", Value::string("live"))]),
            ],
            &mut b,
        );
        let expect: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', //
            0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, //
            0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', //
            0x00, 0x00, 0x09,
        ];
        assert_eq!(&b[..], expect);
        let vals = decode_all(expect, AmfLimits::default()).unwrap();
        assert_eq!(vals[2].get_str("app"), Some("live"));
    }

    #[test]
    fn depth_limit_is_an_error() {
        let mut data = vec![OBJECT];
        for _ in 0..100 {
            data.extend_from_slice(&[0x00, 0x01, b'a', OBJECT]);
        }
        let e = decode_all(&data, AmfLimits::default()).unwrap_err();
        assert!(matches!(e, Error::AmfTooDeep { limit: 32, .. }), "{e}");
        // And arbitrarily deep input cannot overflow the stack.
        let deep = [STRICT_ARRAY, 0, 0, 0, 1].repeat(100_000);
        assert!(matches!(
            decode_all(&deep, AmfLimits::default()),
            Err(Error::AmfTooDeep { .. })
        ));
    }

    #[test]
    fn strict_array_count_beyond_input_is_an_error() {
        let data = [STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, NULL];
        assert!(matches!(
            decode_all(&data, AmfLimits::default()),
            Err(Error::Amf { pos: 0, .. })
        ));
    }

    #[test]
    fn amf3_values_inside_amf0() {
        // avmplus marker, AMF3 object, dynamic, anonymous, {w: int 640, name: "x", again: ref}
        let data = [
            AVMPLUS, 0x0A, 0x0B, 0x01, // object, traits inline dynamic 0 sealed, class ""
            0x03, b'w', 0x04, 0x85, 0x00, // "w": integer 640
            0x09, b'n', b'a', b'm', b'e', 0x06, 0x03, b'x', // "name": "x"
            0x0B, b'n', b'e', b'g', b'.', b'x', 0x04, 0xFF, 0xFF, 0xFF, 0xFF, // -1
            0x01, // end of dynamic members
        ];
        let v = decode_all(&data, AmfLimits::default()).unwrap();
        assert_eq!(
            v,
            vec![Value::object([
                ("w", Value::Number(640.0)),
                ("name", Value::string("x")),
                ("neg.x", Value::Number(-1.0)),
            ])]
        );
    }

    #[test]
    fn amf3_reference_amplification_is_bounded() {
        // An outer array (object 0) whose first element is a 100-element array (object 1) and
        // whose other 19,999 elements reference object 1: 2 million values once copied.
        let n: u32 = 20_000;
        let mut b = BytesMut::new();
        b.put_u8(AVMPLUS);
        b.put_u8(0x09);
        amf3::put_u29((n << 1) | 1, &mut b);
        b.put_u8(0x01); // no associative part
        b.put_u8(0x09);
        amf3::put_u29((100 << 1) | 1, &mut b);
        b.put_u8(0x01);
        b.put_bytes(0x01, 100); // 100 nulls
        for _ in 1..n {
            b.put_slice(&[0x09, 0x02]); // reference to object 1
        }
        let e = decode_all(&b, AmfLimits::default()).unwrap_err();
        assert!(matches!(e, Error::AmfTooManyValues { .. }), "{e}");
        // A reference to the array being decoded is cyclic, and refused.
        let cyclic = [AVMPLUS, 0x09, 0x03, 0x01, 0x09, 0x00];
        assert!(matches!(
            decode_all(&cyclic, AmfLimits::default()),
            Err(Error::Amf { .. })
        ));
    }

    #[test]
    fn byte_array_and_long_string_round_trip() {
        let v = Value::ByteArray(vec![1, 2, 3]);
        assert_eq!(round_trip(&v), v);
        let s = Value::String("z".repeat(70_000));
        assert_eq!(round_trip(&s), s);
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u32..2000 {
            let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
            let data: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 20) as u8
                })
                .collect();
            let _ = decode_all(&data, AmfLimits::default());
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
                .prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            ".{0,20}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            (-1e12f64..1e12, any::<i16>())
                .prop_map(|(millis, timezone)| Value::Date { millis, timezone }),
            ".{0,20}".prop_map(Value::XmlDocument),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteArray),
        ];
        let key = "[a-zA-Z0-9_.]{1,12}";
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec((key, inner.clone()), 0..6).prop_map(Value::Object),
                prop::collection::vec((key, inner.clone()), 0..6).prop_map(Value::EcmaArray),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::StrictArray),
                ("[a-zA-Z.]{1,10}", prop::collection::vec((key, inner), 0..6))
                    .prop_map(|(class, properties)| Value::TypedObject { class, properties }),
            ]
        })
    }

    proptest! {
        /// decode(encode(v)) == v, and decoding stops exactly at the end of the encoding.
        #[test]
        fn amf0_round_trip(values in prop::collection::vec(arb_value(), 1..4)) {
            let mut b = BytesMut::new();
            encode_all(&values, &mut b);
            let back = decode_all(&b, AmfLimits::default()).unwrap();
            prop_assert_eq!(&back, &values);
            // Re-encoding the decoded values gives the same bytes.
            let mut again = BytesMut::new();
            encode_all(&back, &mut again);
            prop_assert_eq!(&again[..], &b[..]);
        }

        /// Any prefix of a valid encoding is either an error or fewer values, never a panic.
        #[test]
        fn truncation_is_an_error(v in arb_value(), cut in any::<prop::sample::Index>()) {
            let mut b = BytesMut::new();
            encode(&v, &mut b);
            let n = cut.index(b.len());
            if n < b.len() {
                let _ = decode_all(&b[..n], AmfLimits::default());
            }
        }
    }
}
