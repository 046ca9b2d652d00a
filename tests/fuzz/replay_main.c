/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	replay_main - run a fuzz target over its corpus, for make check
 * DESCRIPTION
 *	Feeds every file in FUZZ_CORPUS_DIR/FUZZ_NAME.in/ (the corpus) and
 *	FUZZ_NAME.repro/ (inputs that once crashed) to LLVMFuzzerTestOneInput,
 *	as libpsl's fuzz/main.c does. A crash or abort fails the test. An
 *	empty or missing corpus fails too, so the test cannot pass vacuously.
 */

/* System library. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GLib. */
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* compare_names - order file names in a GPtrArray */
static int
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* replay_dir - feed every regular file of dir; return how many, or -1 */
static int
replay_dir(const char *dir, gboolean required)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &error);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    if (d == NULL) {
        if (!required && g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return 0;
        fprintf(stderr, "replay: %s\n", error->message);
        return -1;
    }
    while ((name = g_dir_read_name(d)) != NULL)
        if (name[0] != '.')
            g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, compare_names);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
        g_autofree char *buf = NULL;
        gsize len;

        if (!g_file_get_contents(path, &buf, &len, &error)) {
            fprintf(stderr, "replay: %s\n", error->message);
            return -1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    }
    return (int)names->len;
}

int
main(void)
{
    g_autofree char *in = g_build_filename(FUZZ_CORPUS_DIR, FUZZ_NAME ".in", NULL);
    g_autofree char *repro = g_build_filename(FUZZ_CORPUS_DIR, FUZZ_NAME ".repro", NULL);
    int n_in = replay_dir(in, TRUE);
    int n_repro = replay_dir(repro, FALSE);

    if (n_in < 0 || n_repro < 0)
        return EXIT_FAILURE;
    if (n_in == 0) {
        fprintf(stderr, "replay: %s is empty\n", in);
        return EXIT_FAILURE;
    }
    printf("%s: %d corpus inputs, %d crash reproducers replayed\n", FUZZ_NAME, n_in, n_repro);
    return EXIT_SUCCESS;
}
