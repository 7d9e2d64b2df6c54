;; A valid core WebAssembly module: what you get from the wasm32-unknown-unknown target. Not a component.
(module
  (func (export "on_tick") (param i64 i32) (result i32)
    i32.const 0))
