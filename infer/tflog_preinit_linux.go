package infer

// libtensorflow logs its first line ("oneDNN custom operations are on ...")
// while the dynamic loader runs its initialisers, before any Go code, and
// its logger reads TF_CPP_MIN_LOG_LEVEL at that moment, once. Setting the
// variable from Go is therefore too late, and setting it from a C
// constructor too (libc's own initialiser, which runs after the executable's
// .preinit_array, resets the environment). What works: a .preinit_array
// function, which runs before every shared library's initialiser, re-executes
// the program with TF_CPP_MIN_LOG_LEVEL=2 added when it is not set (errors
// stay visible). Libraries are mapped but not yet initialised at that point,
// so the cost is the loader's relocation work, about 30 ms, once per process.
// Setting TF_CPP_MIN_LOG_LEVEL yourself (any value, 0 shows everything)
// skips it, and so does a --debug argument (edged's debug flag). Every
// binary that links package infer (edged, its tests) does this; a failed
// exec (no /proc) just goes on with the noisy start.

/*
#include <string.h>
#include <unistd.h>

static void edged_quiet_tensorflow(int argc, char **argv, char **envp) {
	static const char key[] = "TF_CPP_MIN_LOG_LEVEL=";
	static char setting[] = "TF_CPP_MIN_LOG_LEVEL=2";
	int n = 0;
	if (envp == NULL || argv == NULL) {
		return;
	}
	for (; envp[n] != NULL; n++) {
		if (strncmp(envp[n], key, sizeof key - 1) == 0) {
			return;
		}
	}
	// edged's --debug shows TensorFlow's lines too.
	for (int i = 1; i < argc && argv[i] != NULL; i++) {
		if (strcmp(argv[i], "--debug") == 0 || strcmp(argv[i], "-debug") == 0 ||
		    strcmp(argv[i], "--debug=true") == 0 || strcmp(argv[i], "-debug=true") == 0) {
			return;
		}
	}
	{
		char *env[n + 2];
		memcpy(env, envp, n * sizeof env[0]);
		env[n] = setting;
		env[n + 1] = NULL;
		execve("/proc/self/exe", argv, env);
	}
}

__attribute__((section(".preinit_array"), used))
static void (*edged_quiet_tensorflow_entry)(int, char **, char **) = edged_quiet_tensorflow;
*/
import "C"
