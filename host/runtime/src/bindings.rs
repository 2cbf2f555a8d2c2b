//! Host bindings generated from `wit/`: the `tool-plugin` world at the root, the
//! `model-adapter` and `policy` worlds in their own modules sharing its types.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "tool-plugin",
    exports: { default: async },
});

/// The `model-adapter` world.
pub mod model_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "model-adapter",
        exports: { default: async },
        with: {
            "tack:plugin/types": crate::bindings::tack::plugin::types,
            "tack:plugin/logging": crate::bindings::tack::plugin::logging,
        },
    });
}

/// The `policy` world.
pub mod policy_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
        exports: { default: async },
        with: {
            "tack:plugin/types": crate::bindings::tack::plugin::types,
            "tack:plugin/logging": crate::bindings::tack::plugin::logging,
        },
    });
}

/// The `code-mode` world.
pub mod code_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "code-mode",
        exports: { default: async },
        imports: { "tack:plugin/host-tools.await-calls": async },
        with: {
            "tack:plugin/types": crate::bindings::tack::plugin::types,
            "tack:plugin/logging": crate::bindings::tack::plugin::logging,
        },
    });
}
