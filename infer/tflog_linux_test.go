package infer

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestQuietTFRestoresStderrAfterPanic: a panic inside quietTF must leave fd
// 2 where it was (else the panic's own message goes into the capture pipe
// and is lost), and what fn wrote before panicking is passed on.
func TestQuietTFRestoresStderrAfterPanic(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	orig, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Dup3(orig, 2, 0)
		syscall.Close(orig)
	}()
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	var want syscall.Stat_t
	if err := syscall.Fstat(2, &want); err != nil {
		t.Fatal(err)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		quietTF(false, func() error {
			os.Stderr.WriteString("written before the panic\n")
			panic("boom")
		})
	}()

	var got syscall.Stat_t
	if err := syscall.Fstat(2, &got); err != nil {
		t.Fatal(err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		t.Fatalf("fd 2 not restored after a panic in quietTF (inode %d, want %d)", got.Ino, want.Ino)
	}
	os.Stderr.WriteString("written after\n")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "written before the panic\nwritten after\n" {
		t.Fatalf("stderr got %q", b)
	}
}
