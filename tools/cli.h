/* cli.h: what the translation units of the `bitnet` command share.
   tools/bitnet.c holds main() and the command table; each further command lives in a
   tools/<topic>.c of its own, includes "../bitnet.h" (without BITNET_IMPLEMENTATION) and
   this file, and defines one `int cmd_<name>(int argc, char **argv)` listed below. */
#ifndef BITNET_CLI_H
#define BITNET_CLI_H

/* Exit status (scripts can rely on it). */
#define EXIT_OK 0
#define EXIT_RUN 1   /* failure while running (I/O, out of memory, context full, bad input data) */
#define EXIT_USAGE 2 /* unknown option, missing or malformed argument */
#define EXIT_LOAD 3  /* the model or tokenizer could not be loaded */

#endif
