//! The unit of the SQLite audit trail: a segment holds the events of one batch in one row.
//! Its body stores each text that repeats within the batch (a user, a token id, a path, the
//! node, the attributes) once and refers to it by number, and each time as an offset from the
//! segment's earliest; an authentication event takes about 30 bytes besides its request id.
//! Beside the body, the row keeps what finds segments without reading them: their time span,
//! the types they hold, and (in `audit_segment_keys`) their users and token ids.
//!
//! An event's id is its segment's id times [`ID_STRIDE`] plus its index in the batch, so ids
//! grow in the order events were written and stay the same when older events of the segment
//! are purged.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{Attributes, AuditEvent, AuditKind, AuditOutcome, StoredAuditEvent};
use crate::store::StoreError;
use crate::store::rows::corrupt;
use crate::store::sql::{storable, storable_attributes};

/// The body layout written by [`encode`] (the `format` column).
pub(crate) const FORMAT: i64 = 1;
/// Most events in one segment.
pub(super) const MAX_EVENTS: usize = 4096;
/// Event ids of segment `s` are `s * ID_STRIDE + index`.
pub(super) const ID_STRIDE: i64 = 1 << 16;

/// The outcomes in their stored order (the body stores the position).
const OUTCOMES: [AuditOutcome; 3] = [
    AuditOutcome::Allowed,
    AuditOutcome::Denied,
    AuditOutcome::PassedOn,
];

/// A segment ready to store.
#[derive(Debug)]
pub(super) struct Encoded {
    pub body: Vec<u8>,
    /// Earliest and latest event time, unix milliseconds.
    pub first_time: i64,
    pub last_time: i64,
    pub events: i64,
    /// The types held, one bit per [`kind_bit`].
    pub kinds: i64,
    /// The users and token ids held, as [`user_key`] and [`token_key`] make them.
    pub keys: BTreeSet<String>,
}

/// The bit of `kind` in a segment's `kinds`.
pub(super) fn kind_bit(kind: AuditKind) -> i64 {
    1 << position(&AuditKind::ALL, &kind)
}

/// The keys of a segment holding `events`: their users and token ids as stored ([`storable`]).
pub(super) fn keys_of<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> BTreeSet<String> {
    let (mut users, mut tokens) = (BTreeSet::new(), BTreeSet::new());
    for e in events {
        users.extend(storable(e.user.as_deref()));
        tokens.extend(storable(e.token_id.as_deref()));
    }
    let users = users.iter().map(|user| user_key(user));
    users
        .chain(tokens.iter().map(|token| token_key(token)))
        .collect()
}

/// The key under which segments holding `user`'s events are found.
pub(super) fn user_key(user: &str) -> String {
    format!("u:{user}")
}

/// The key under which segments holding `token_id`'s events are found.
pub(super) fn token_key(token_id: &str) -> String {
    format!("t:{token_id}")
}

fn position<T: PartialEq>(all: &[T], item: &T) -> u8 {
    let i = all.iter().position(|x| x == item).expect("a listed value");
    u8::try_from(i).expect("fewer than 256 values")
}

/// The body: the texts, then the events referring to them by number (0 for none, else
/// position + 1). `T` is `Cow<str>` when writing, `String` when reading.
#[derive(Serialize, Deserialize)]
struct Body<T> {
    /// The earliest event time, unix milliseconds; events store their offset from it.
    base: i64,
    texts: Vec<T>,
    events: Vec<Packed<T>>,
}

#[derive(Serialize, Deserialize)]
struct Packed<T> {
    index: u16,
    offset: u64,
    kind: u8,
    outcome: u8,
    user: u32,
    token_id: u32,
    client_ip: Option<IpAddr>,
    method: u32,
    path: u32,
    /// Unique to its event: stored in place.
    request_id: Option<T>,
    node_id: u32,
    actor: u32,
    attributes: u32,
}

/// Numbers texts, storing each distinct one once.
#[derive(Default)]
struct Texts<'a> {
    list: Vec<Cow<'a, str>>,
    numbers: HashMap<Cow<'a, str>, u32, foldhash::fast::RandomState>,
}

impl<'a> Texts<'a> {
    /// The number of a field's `text`, given the field's last text and its number: a
    /// comparison instead of a lookup while the field repeats (the same text in the same
    /// place, as static texts are, is not even compared).
    #[inline]
    fn number_run(&mut self, last: &mut Option<(&'a str, u32)>, text: Option<&'a str>) -> u32 {
        let Some(text) = text else { return 0 };
        match *last {
            Some((previous, n)) if std::ptr::eq(previous, text) || previous == text => n,
            _ => {
                let n = self.number(storable(Some(text)));
                *last = Some((text, n));
                n
            }
        }
    }

    fn number(&mut self, text: Option<Cow<'a, str>>) -> u32 {
        let Some(text) = text else { return 0 };
        if let Some(&n) = self.numbers.get(&*text) {
            return n;
        }
        self.list.push(text.clone());
        let n = u32::try_from(self.list.len()).expect("fewer texts than events times fields");
        self.numbers.insert(text, n);
        n
    }
}

/// Encodes `events` (each with its index in the segment, unique and below [`ID_STRIDE`]),
/// with U+0000 replaced as every audit insert does ([`storable`]). `events` must not be empty.
///
/// The body is written as `postcard` writes a [`Body`] ([`wire`]), in one pass over the
/// events; the keys are gathered from the numbers of the users and token ids as each run of
/// them starts.
pub(super) fn encode(events: &[(u16, &AuditEvent)]) -> Encoded {
    assert!(!events.is_empty(), "a segment holds at least one event");
    // Whole milliseconds, rounded down, as the store keeps times.
    let times: Vec<i64> = events
        .iter()
        .map(|(_, e)| e.time.timestamp_millis())
        .collect();
    let (first_time, last_time) = times.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &time| {
        (lo.min(time), hi.max(time))
    });
    let mut texts = Texts::default();
    let mut kinds = 0;
    // Each field's last text: consecutive events mostly repeat it.
    let [
        mut user,
        mut token,
        mut method,
        mut path,
        mut node,
        mut actor,
    ] = [None; 6];
    let mut last_attributes: Option<(&Attributes, u32)> = None;
    // The numbers of the users and token ids held, once per run.
    let (mut users, mut tokens) = (Vec::new(), Vec::new());
    let mut packed = Vec::with_capacity(events.len() * 40);
    for (&(index, e), time) in events.iter().zip(times) {
        let kind = position(&AuditKind::ALL, &e.kind);
        kinds |= 1 << kind;
        // Numbered in this order, the order the texts are listed in.
        let user_n = texts.number_run(&mut user, e.user.as_deref());
        if user_n != 0 && users.last() != Some(&user_n) {
            users.push(user_n);
        }
        let token_n = texts.number_run(&mut token, e.token_id.as_deref());
        if token_n != 0 && tokens.last() != Some(&token_n) {
            tokens.push(token_n);
        }
        let attributes = match last_attributes {
            Some((value, n)) if *value == e.attributes => n,
            _ => {
                let json = serde_json::to_string(&storable_attributes(&e.attributes))
                    .expect("a JSON value serializes");
                let n = texts.number(Some(Cow::Owned(json)));
                last_attributes = Some((&e.attributes, n));
                n
            }
        };
        let method_n = texts.number_run(&mut method, e.method.as_deref());
        let path_n = texts.number_run(&mut path, e.path.as_deref());
        let node_n = texts.number_run(&mut node, Some(&e.node_id));
        let actor_n = texts.number_run(&mut actor, e.actor.as_deref());
        // A `Packed`, field by field.
        let out = &mut packed;
        wire::varint(out, u64::from(index));
        wire::varint(out, u64::try_from(time - first_time).unwrap_or(0));
        out.push(kind);
        out.push(position(&OUTCOMES, &e.outcome));
        wire::varint(out, u64::from(user_n));
        wire::varint(out, u64::from(token_n));
        wire::option_ip(out, e.client_ip);
        wire::varint(out, u64::from(method_n));
        wire::varint(out, u64::from(path_n));
        wire::option_text(out, storable(e.request_id.as_deref()).as_deref());
        wire::varint(out, u64::from(node_n));
        wire::varint(out, u64::from(actor_n));
        wire::varint(out, u64::from(attributes));
    }
    let text_of = |n: &u32| &*texts.list[*n as usize - 1];
    let keys = users
        .iter()
        .map(|n| user_key(text_of(n)))
        .chain(tokens.iter().map(|n| token_key(text_of(n))))
        .collect();
    // A `Body`: the base, the texts, then the events.
    let size: usize = texts.list.iter().map(|t| t.len() + 2).sum();
    let mut body = Vec::with_capacity(24 + size + packed.len());
    wire::signed(&mut body, first_time);
    wire::len(&mut body, texts.list.len());
    for text in &texts.list {
        wire::text(&mut body, text);
    }
    wire::len(&mut body, events.len());
    body.extend_from_slice(&packed);
    Encoded {
        body,
        first_time,
        last_time,
        events: i64::try_from(events.len()).expect("a segment's length fits"),
        kinds,
        keys,
    }
}

/// The events of segment `segment_id` from its `format` and `body`, in the order written.
pub(crate) fn decode(
    segment_id: i64,
    format: i64,
    body: &[u8],
) -> Result<Vec<StoredAuditEvent>, StoreError> {
    if format != FORMAT {
        return Err(corrupt(
            "format",
            format!("{format} is not a segment format"),
        ));
    }
    let Body::<String> {
        base,
        texts,
        events,
    } = postcard::from_bytes(body).map_err(|e| corrupt("body", e.to_string()))?;
    let text = |n: u32| -> Result<Option<String>, StoreError> {
        match n {
            0 => Ok(None),
            n => texts
                .get(n as usize - 1)
                .cloned()
                .map(Some)
                .ok_or_else(|| corrupt("body", format!("text {n} of {}", texts.len()))),
        }
    };
    events
        .into_iter()
        .map(|p| {
            let time = i64::try_from(p.offset)
                .ok()
                .and_then(|offset| base.checked_add(offset))
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .ok_or_else(|| corrupt("body", format!("offset {} is out of range", p.offset)))?;
            let kind = *AuditKind::ALL
                .get(usize::from(p.kind))
                .ok_or_else(|| corrupt("body", format!("type {}", p.kind)))?;
            let outcome = *OUTCOMES
                .get(usize::from(p.outcome))
                .ok_or_else(|| corrupt("body", format!("outcome {}", p.outcome)))?;
            let attributes = text(p.attributes)?.unwrap_or_else(|| "{}".to_owned());
            let id = segment_id
                .checked_mul(ID_STRIDE)
                .and_then(|first| first.checked_add(i64::from(p.index)))
                .ok_or_else(|| corrupt("id", format!("segment {segment_id} is out of range")))?;
            Ok(StoredAuditEvent {
                id,
                event: AuditEvent {
                    time,
                    kind,
                    outcome,
                    user: text(p.user)?.map(Into::into),
                    token_id: text(p.token_id)?.map(Into::into),
                    client_ip: p.client_ip,
                    method: text(p.method)?.map(Into::into),
                    path: text(p.path)?.map(Into::into),
                    request_id: p.request_id.map(Into::into),
                    node_id: text(p.node_id)?.unwrap_or_default().into(),
                    actor: text(p.actor)?,
                    attributes: serde_json::from_str::<serde_json::Value>(&attributes)
                        .map_err(|e| corrupt("body", e.to_string()))?
                        .into(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
mod wire;
