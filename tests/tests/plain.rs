//! A component built with plain `wit-bindgen` (no tack SDK) runs as tools: values
//! of every WIT kind go in as JSON and come back unchanged, values a WIT type
//! cannot hold are refused by the host before the guest runs, and `result` errors
//! become tool errors. Descriptions come from the WIT doc comments and
//! annotations from the manifest.

use serde_json::{Value, json};
use tack_capability::Grant;
use tack_runtime::{CallError, ErrorCode, Plugin, Sandbox};
use tack_tests::{call, guest, one_json, runtime, tool_error, workspace_root};

/// The plain guest with its manifest and WIT docs embedded, as `tack plugin embed`
/// does it.
fn plugin() -> Plugin {
    let source = workspace_root().join("tests/guests/plain");
    let bytes = std::fs::read(guest("tack_guest_plain")).unwrap();
    let manifest = std::fs::read_to_string(source.join("tack.toml")).unwrap();
    let bytes = tack_runtime::embed_manifest(&bytes, &manifest).unwrap();
    let bytes = tack_runtime::embed_wit_docs(&bytes, &source.join("wit")).unwrap();
    runtime().load(&bytes).expect("the plain guest loads")
}

fn sandbox(plugin: &Plugin) -> Sandbox {
    plugin.sandbox(&Grant::default()).unwrap()
}

#[tokio::test]
async fn tools_carry_wit_docs_schemas_and_manifest_annotations() {
    let plugin = plugin();
    let tools = plugin.tools().await.unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name} in {tools:?}"))
    };
    let top = tool("top_words");
    assert!(
        top.description.starts_with("The `n` most frequent words"),
        "{}",
        top.description
    );
    assert_eq!(top.input_schema["properties"]["n"]["maximum"], 255);
    assert_eq!(top.input_schema["required"], json!(["text", "n"]));
    assert!(tool("read_file").annotations.read_only);
    assert!(tool("fetch").annotations.open_world);
    assert!(!tool("count").annotations.read_only);
    assert_eq!(
        plugin.tool_exports().iter().find(|(t, _)| *t == "ratio"),
        Some(&("ratio", "example:plain/text@0.1.0#ratio"))
    );
}

#[tokio::test]
async fn every_wit_kind_round_trips() {
    let plugin = plugin();
    let sb = sandbox(&plugin);
    for scalars in [
        json!({
            "b": true, "a-u8": 255, "a-u16": 65535, "a-u32": 4294967295u32,
            "a-u64": u64::MAX, "a-s8": -128, "a-s16": -32768, "a-s32": i32::MIN,
            "a-s64": i64::MIN, "a-f32": 1.5, "a-f64": -0.25, "c": "🦀", "s": "ünïcode\n"
        }),
        json!({
            "b": false, "a-u8": 0, "a-u16": 0, "a-u32": 0, "a-u64": 0, "a-s8": 127,
            "a-s16": 32767, "a-s32": i32::MAX, "a-s64": i64::MAX, "a-f32": 0.0,
            "a-f64": 1e300, "c": "a", "s": ""
        }),
    ] {
        let out = call(&sb, "echo_scalars", json!({ "v": scalars }))
            .await
            .unwrap();
        assert_eq!(one_json(&out), scalars);
    }
    for compound in [
        json!({
            "color": "green",
            "perms": ["read", "exec"],
            "shapes": [
                {"tag": "circle", "val": 2.5},
                {"tag": "square", "val": {"x": -1, "y": 7}},
                {"tag": "empty"}
            ],
            "maybe": {"x": 3, "y": 4},
            "outcome": {"ok": "fine"},
            "pair": ["é", true],
            "four": [-128, 0, 1, 127]
        }),
        json!({
            "color": "blue",
            "perms": [],
            "shapes": [],
            "maybe": null,
            "outcome": {"err": 404},
            "pair": ["x", false],
            "four": [0, 0, 0, 0]
        }),
    ] {
        let out = call(&sb, "echo_compound", json!({ "v": compound }))
            .await
            .unwrap();
        assert_eq!(one_json(&out), compound);
    }
}

#[tokio::test]
async fn values_a_wit_type_cannot_hold_are_refused_before_the_call() {
    let plugin = plugin();
    let sb = sandbox(&plugin);
    let scalars = json!({
        "b": true, "a-u8": 1, "a-u16": 1, "a-u32": 1, "a-u64": 1, "a-s8": 1,
        "a-s16": 1, "a-s32": 1, "a-s64": 1, "a-f32": 1.0, "a-f64": 1.0, "c": "c", "s": "s"
    });
    let with = |field: &str, value: Value| {
        let mut v = scalars.clone();
        v[field] = value;
        json!({ "v": v })
    };
    let cases = [
        (with("a-u8", json!(256)), "/v/a-u8"),
        (with("a-s8", json!(-129)), "/v/a-s8"),
        (with("a-u16", json!(65536)), "/v/a-u16"),
        (with("a-s16", json!(32768)), "/v/a-s16"),
        (with("a-u32", json!(4294967296u64)), "/v/a-u32"),
        (with("a-s32", json!(2147483648u64)), "/v/a-s32"),
        (with("a-u64", json!(-1)), "/v/a-u64"),
        (with("a-s64", json!(9223372036854775808u64)), "/v/a-s64"),
        (with("a-u32", json!(1.5)), "/v/a-u32"),
        (with("c", json!("two")), "/v/c"),
        (with("b", json!("yes")), "/v/b"),
    ];
    for (args, pointer) in cases {
        let err = call(&sb, "echo_scalars", args.clone()).await.unwrap_err();
        match &err {
            CallError::InvalidArguments { errors, .. } => {
                assert_eq!(errors[0].pointer, pointer, "{args}: {err}")
            }
            other => panic!("{args}: expected invalid arguments, got {other}"),
        }
    }
    let compound = json!({
        "color": "red", "perms": [], "shapes": [], "maybe": null,
        "outcome": {"ok": ""}, "pair": ["a", true], "four": [1, 2, 3, 4]
    });
    let with = |field: &str, value: Value| {
        let mut v = compound.clone();
        v[field] = value;
        json!({ "v": v })
    };
    for (args, pointer) in [
        (with("color", json!("purple")), "/v/color"),
        (with("perms", json!(["fly"])), "/v/perms/0"),
        (with("shapes", json!([{"tag": "hexagon"}])), "/v/shapes/0"),
        (with("four", json!([1, 2, 3])), "/v/four"),
        (with("four", json!([1, 2, 3, 200])), "/v/four/3"),
        (with("outcome", json!({"ok": "a", "err": 1})), "/v/outcome"),
        (with("pair", json!(["a"])), "/v/pair"),
    ] {
        let err = call(&sb, "echo_compound", args.clone()).await.unwrap_err();
        match &err {
            CallError::InvalidArguments { errors, .. } => {
                assert_eq!(errors[0].pointer, pointer, "{args}: {err}")
            }
            other => panic!("{args}: expected invalid arguments, got {other}"),
        }
    }
}

#[tokio::test]
async fn results_and_result_errors_map_to_tool_outcomes() {
    let plugin = plugin();
    let sb = sandbox(&plugin);
    let out = call(&sb, "ratio", json!({"a": 3, "b": 4})).await.unwrap();
    assert_eq!(one_json(&out), json!(0.75));
    let out = call(&sb, "ratio", json!({"a": 3, "b": 0})).await.unwrap();
    let err = tool_error(&out);
    assert_eq!(err.code, ErrorCode::InvalidArguments, "{err}");
    assert!(err.message.contains("zero"), "{err}");

    let out = call(
        &sb,
        "top_words",
        json!({"text": "The cat saw the dog; the DOG ran.", "n": 2, "ignore": null}),
    )
    .await
    .unwrap();
    assert_eq!(one_json(&out), json!([["the", 3], ["dog", 2]]));
    // An option left out is `none`.
    let out = call(&sb, "top_words", json!({"text": "b a b", "n": 1}))
        .await
        .unwrap();
    assert_eq!(one_json(&out), json!([["b", 2]]));
}
