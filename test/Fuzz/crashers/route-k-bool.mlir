func.func @f(%l: tensor<1x4x8xf32>) {
  %g, %m = moe.route #moe.token<k = true> %l : tensor<1x4x8xf32>
  return
}
