//! The Chat Completions wire format, as typed (de)serializers: a request body is
//! written straight from the completion request, and a stream chunk is read with
//! its strings borrowed from the event text. Both run for every model call (a
//! chunk for every streamed token), so no JSON tree is built in between.
//!
//! Reading is lenient where providers differ: unknown fields are ignored, and a
//! text field that is not a string (some servers send `null` or an array) reads
//! as absent instead of failing the stream.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `POST /chat/completions` body.
#[derive(Serialize)]
pub(crate) struct Body<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<Message<'a>>,
    pub(crate) max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

/// One message of the conversation (`content` is `null` for an assistant turn
/// that only calls tools).
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<OutCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_call_id: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// A plain text message.
    pub(crate) fn text(role: &'static str, content: Cow<'a, str>) -> Self {
        Message {
            role,
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool call of an earlier assistant turn.
#[derive(Serialize)]
pub(crate) struct OutCall<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OutFunction<'a>,
}

/// Its function: name and arguments (a JSON text, as the model wrote it).
#[derive(Serialize)]
pub(crate) struct OutFunction<'a> {
    pub(crate) name: &'a str,
    pub(crate) arguments: &'a str,
}

/// A tool the model may call.
#[derive(Serialize)]
pub(crate) struct OutTool<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OutToolFunction<'a>,
}

/// Its name, description and JSON Schema (copied in as it is).
#[derive(Serialize)]
pub(crate) struct OutToolFunction<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) parameters: &'a RawValue,
}

/// The schema used when a tool's own is not JSON: any object.
pub(crate) fn any_object() -> &'static RawValue {
    serde_json::from_str(r#"{"type":"object"}"#).expect("a JSON object")
}

/// One `chat.completion.chunk` of a stream.
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub(crate) choices: Vec<Choice<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<Value>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

/// A choice's delta and finish reason.
#[derive(Deserialize)]
pub(crate) struct Choice<'a> {
    #[serde(default, borrow)]
    pub(crate) delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub(crate) finish_reason: Text<'a>,
}

/// New text and tool-call fragments.
#[derive(Deserialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(default, borrow)]
    pub(crate) content: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) tool_calls: Option<Vec<CallFragment<'a>>>,
}

/// A fragment of tool call `index`.
#[derive(Deserialize)]
pub(crate) struct CallFragment<'a> {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) id: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) function: Option<FunctionFragment<'a>>,
}

/// A fragment of a call's name and arguments.
#[derive(Deserialize, Default)]
pub(crate) struct FunctionFragment<'a> {
    #[serde(default, borrow)]
    pub(crate) name: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) arguments: Text<'a>,
}

/// A text field: borrowed from the input where it has no escapes; absent when
/// missing, `null` or not a string.
#[derive(Default)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_borrow_plain_strings_and_tolerate_odd_fields() {
        let data = r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi \"you\"","tool_calls":[{"index":1,"id":"c1","function":{"name":"read","arguments":"{}"}}]},"finish_reason":null}],"extra":[1,2]}"#;
        let c: Chunk<'_> = serde_json::from_str(data).unwrap();
        let choice = &c.choices[0];
        let delta = choice.delta.as_ref().unwrap();
        assert_eq!(delta.content.0.as_deref(), Some("Hi \"you\""));
        let call = &delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.index, Some(1));
        assert!(matches!(call.id.0, Some(Cow::Borrowed("c1"))));
        let function = call.function.as_ref().unwrap();
        assert_eq!(function.name.0.as_deref(), Some("read"));
        assert_eq!(function.arguments.0.as_deref(), Some("{}"));
        assert!(choice.finish_reason.0.is_none());

        let odd = r#"{"choices":[{"delta":{"content":[{"type":"text"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}"#;
        let c: Chunk<'_> = serde_json::from_str(odd).unwrap();
        assert!(c.choices[0].delta.as_ref().unwrap().content.0.is_none());
        assert_eq!(c.choices[0].finish_reason.0.as_deref(), Some("stop"));
        assert_eq!(c.usage.unwrap()["prompt_tokens"], 3);
    }
}
