;; A component that exports every name of the `game` world, each with the wrong type (no parameters, a u32
;; result), as a plugin built against an unrelated interface would.
(component
  (core module $m
    (func (export "f") (result i32)
      i32.const 0))
  (core instance $i (instantiate $m))
  (func $f (result u32) (canon lift (core func $i "f")))
  (export "init" (func $f))
  (export "on-join" (func $f))
  (export "on-leave" (func $f))
  (export "on-message" (func $f))
  (export "on-tick" (func $f))
  (export "on-timer" (func $f))
  (export "snapshot" (func $f))
  (export "restore" (func $f)))
