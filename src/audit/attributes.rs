//! An audit event's details: a JSON object. An authentication decision records one fixed
//! pair (`{"scope": "read-only"}`, `{"reason": "unknown_id"}`), held as two static texts so
//! the request path builds it without allocating; everything else (a lifecycle change's old
//! and new values, attributes read back from the store) is a JSON value.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Details of an audit event, always a JSON object.
#[derive(Debug, Clone)]
pub enum Attributes {
    /// `{key: value}`, both fixed texts.
    Pair(&'static str, &'static str),
    /// Any JSON object.
    Json(Value),
}

impl Attributes {
    /// `{}`.
    pub fn empty() -> Self {
        Self::Json(Value::Object(Map::new()))
    }

    /// As a JSON value (a copy only for a [`Attributes::Pair`]).
    pub fn to_value(&self) -> Cow<'_, Value> {
        match self {
            Self::Pair(key, value) => Cow::Owned(pair(key, value)),
            Self::Json(value) => Cow::Borrowed(value),
        }
    }

    /// Into a JSON value.
    pub fn into_value(self) -> Value {
        match self {
            Self::Pair(key, value) => pair(key, value),
            Self::Json(value) => value,
        }
    }
}

fn pair(key: &str, value: &str) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), Value::String(value.to_owned()));
    Value::Object(map)
}

impl From<Value> for Attributes {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

/// Equal when they are the same JSON, whichever form holds it.
impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Pair(k1, v1), Self::Pair(k2, v2)) => k1 == k2 && v1 == v2,
            // Most events have none: no walk over two empty maps.
            (Self::Json(Value::Object(a)), Self::Json(Value::Object(b)))
                if a.is_empty() && b.is_empty() =>
            {
                true
            }
            (Self::Json(a), Self::Json(b)) => a == b,
            _ => self.to_value() == other.to_value(),
        }
    }
}

impl PartialEq<Value> for Attributes {
    fn eq(&self, other: &Value) -> bool {
        *self.to_value() == *other
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Pair(key, value) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(key, value)?;
                map.end()
            }
            Self::Json(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::Json)
    }
}

/// The JSON text.
impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pair_is_the_same_json_as_its_object() {
        let pair = Attributes::Pair("scope", "read-only");
        let json = Attributes::from(json!({ "scope": "read-only" }));
        assert_eq!(pair, json);
        assert_eq!(json, pair);
        assert_eq!(pair, json!({ "scope": "read-only" }));
        assert_ne!(pair, Attributes::Pair("scope", "read-write"));
        assert_ne!(pair, Attributes::empty());
        assert_eq!(pair.to_string(), r#"{"scope":"read-only"}"#);
        assert_eq!(pair.to_string(), json.to_string());
        assert_eq!(Attributes::empty().to_string(), "{}");
        let back: Attributes = serde_json::from_str(&pair.to_string()).unwrap();
        assert_eq!(back, pair);
        assert_eq!(pair.into_value(), json!({ "scope": "read-only" }));
    }

    #[test]
    fn fixed_texts_are_escaped_like_any_json() {
        let odd = Attributes::Pair("k\"\\", "v\n\u{1}");
        let value: Value = serde_json::from_str(&odd.to_string()).unwrap();
        assert_eq!(value, json!({ "k\"\\": "v\n\u{1}" }));
    }
}
