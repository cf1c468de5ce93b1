// RUN: usmoe-opt --help | FileCheck %s

// Every moe pass is listed with its summary, next to the upstream ones.
// CHECK: Available Dialects: {{.*}}moe
// CHECK: --moe-fuse-routing {{.*}}Fuse a score op and the selection that consumes it into moe.route
