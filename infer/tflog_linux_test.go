package infer

import (
	"strings"
	"testing"
)

func TestFilterTFLogKeepsErrorsAndOtherOutput(t *testing.T) {
	in := strings.Join([]string{
		"2026-11-29 22:25:29.713895: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
		"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow",
		"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
		"I0000 00:00:1795991129.766092   22260 mlir_graph_optimization_pass.cc:401] MLIR V1 optimization pass is not enabled",
		"W0000 00:00:1795991129.766092   22260 some_pass.cc:12] a warning",
		"E0000 00:00:1795991129.766092   22260 kernel.cc:99] a real error",
		"2026-11-29 22:25:29.713895: E tensorflow/core/framework/op_kernel.cc:1] another error",
		`time=2026-11-29T22:46:13Z level=INFO msg="someone else's log line"`,
	}, "\n") + "\n"
	var out strings.Builder
	filterTFLog(&out, []byte(in))
	want := "E0000 00:00:1795991129.766092   22260 kernel.cc:99] a real error\n" +
		"2026-11-29 22:25:29.713895: E tensorflow/core/framework/op_kernel.cc:1] another error\n" +
		`time=2026-11-29T22:46:13Z level=INFO msg="someone else's log line"` + "\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
