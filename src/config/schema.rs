//! The shape of [`RawConfig`] as its `Deserialize` impl describes it: which sections and keys
//! exist and what kind of value each key takes. Environment overrides are read by it, so a
//! value stays text where the key expects text, even when it looks like a number.

use std::collections::BTreeMap;

use serde::Deserialize as _;
use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeSeed, Deserializer, Error as _, IntoDeserializer, MapAccess, Visitor};

use super::RawConfig;

/// What a key holds, as the config's serde types expect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Bool,
    Integer,
    Float,
    /// A list, written as a TOML array.
    List,
    /// A table with keys of the user's choosing, written as a TOML inline table.
    Map,
    /// A section with fixed keys.
    Section(BTreeMap<&'static str, Kind>),
}

impl Kind {
    /// How a value of this kind is written, for messages.
    pub(super) fn expected(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Bool => "true or false",
            Self::Integer => "a whole number",
            Self::Float => "a number",
            Self::List => "a TOML array such as [\"a\", \"b\"]",
            Self::Map | Self::Section(_) => "a TOML inline table such as { key = \"value\" }",
        }
    }
}

/// The top-level keys and sections of the config file.
pub(super) fn root() -> BTreeMap<&'static str, Kind> {
    let mut kind = None;
    // The probe only fails if a config type stops describing itself (a key of no fixed type);
    // the unit test below keeps that from shipping.
    match RawConfig::deserialize(Probe { kind: &mut kind }) {
        Ok(_) => match kind {
            Some(Kind::Section(keys)) => keys,
            _ => BTreeMap::new(),
        },
        Err(_) => BTreeMap::new(),
    }
}

/// A deserializer that produces placeholder values and records what was asked of it.
struct Probe<'a> {
    kind: &'a mut Option<Kind>,
}

impl Probe<'_> {
    fn record(self, kind: Kind) {
        *self.kind = Some(kind);
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::custom("a config key has no fixed type"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Bool);
        visitor.visit_bool(false)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Integer);
        visitor.visit_u64(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Float);
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Text);
        visitor.visit_char(' ')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Text);
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::List);
        visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<bool>()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.record(Kind::Map);
        visitor.visit_map(MapDeserializer::new(std::iter::empty::<(bool, bool)>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut keys = BTreeMap::new();
        let value = visitor.visit_map(Fields {
            fields: fields.iter(),
            current: None,
            keys: &mut keys,
        })?;
        self.record(Kind::Section(keys));
        Ok(value)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// A struct's fields, each probed for its kind.
struct Fields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    keys: &'a mut BTreeMap<&'static str, Kind>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(&name) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(name);
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self
            .current
            .take()
            .ok_or_else(|| Error::custom("a value without a key"))?;
        let mut kind = None;
        let value = seed.deserialize(Probe { kind: &mut kind })?;
        let kind = kind.ok_or_else(|| Error::custom(format!("{name} has no fixed type")))?;
        self.keys.insert(name, kind);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_section_and_key() {
        let root = root();
        assert_eq!(root["node_id"], Kind::Text);
        let Kind::Section(proxy) = &root["proxy"] else {
            panic!("proxy is not a section: {root:?}");
        };
        assert_eq!(proxy["listen"], Kind::Text);
        assert_eq!(proxy["trusted_proxies"], Kind::List);
        assert_eq!(proxy["max_header_bytes"], Kind::Integer);
        let Kind::Section(auth) = &root["auth"] else {
            panic!("auth is not a section");
        };
        assert_eq!(auth["basic_auth_fallback"], Kind::Bool);
        assert_eq!(auth["max_lifetime_days"], Kind::Integer);
        let Kind::Section(admin) = &root["admin"] else {
            panic!("admin is not a section");
        };
        assert_eq!(admin["token"], Kind::Text);
        let Kind::Section(log) = &root["log"] else {
            panic!("log is not a section");
        };
        assert_eq!(log["loggers"], Kind::Map);
        // Every key of the default config, rendered, is known to the schema.
        let rendered = toml::Value::try_from(RawConfig::default()).expect("renders");
        for (name, value) in rendered.as_table().expect("a table") {
            match (value, &root[name.as_str()]) {
                (toml::Value::Table(table), Kind::Section(keys)) => {
                    for key in table.keys() {
                        assert!(keys.contains_key(key.as_str()), "{name}.{key}");
                    }
                }
                (_, Kind::Section(_)) => panic!("{name} is a section in the schema only"),
                _ => {}
            }
        }
    }
}
