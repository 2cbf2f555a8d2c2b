//! Host bindings generated from `wit/` for the `tool-plugin` world.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "tool-plugin",
    exports: { default: async },
});
