;; A component that exports `on-tick` with the right type, and no other export of the `game` world.
(component
  (core module $m
    (memory (export "memory") 1)
    ;; Returns a pointer to the result in memory: address 0 holds discriminant 0 (ok).
    (func (export "on-tick") (param i64 i32) (result i32)
      i32.const 0))
  (core instance $i (instantiate $m))
  (func (export "on-tick") (param "tick" u64) (param "dt-ms" u32) (result (result (error string)))
    (canon lift (core func $i "on-tick") (memory (core memory $i "memory")))))
