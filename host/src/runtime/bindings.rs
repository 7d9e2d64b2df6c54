//! Host-side bindings generated from `wit/` (the `game` world).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "game",
    path: "../wit",
    additional_derives: [PartialEq, Eq],
    // Every import may trap: that is how a call that crosses a host limit ends (`runtime::imports`).
    imports: { default: trappable },
});
