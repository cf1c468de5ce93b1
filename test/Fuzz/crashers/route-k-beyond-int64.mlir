// A Token Choice k far beyond int64 (found by the fuzzer: the attribute
// builder cast it to int64, undefined behaviour).
func.func @f(%l: tensor<1x4x8xf32>) {
  %g, %m = moe.route #moe.token<k = 9999999999999999999999999999999999999999999999999999999999999999999999991.5> %l : tensor<1x4x8xf32>
  return
}
