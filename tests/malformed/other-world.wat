;; A valid component of another world: it exports `hello: func() -> u32` and none of the `game` exports.
(component
  (core module $m
    (func (export "hello") (result i32)
      i32.const 42))
  (core instance $i (instantiate $m))
  (func (export "hello") (result u32)
    (canon lift (core func $i "hello"))))
