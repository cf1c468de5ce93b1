
func.func @f(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 1> %l : tensor<?x?x8xf32>
  return %g : tensor<?x?x8xf32>
}
 tens