import Foundation

/// A small but real C project: modules that include a shared header, a
/// static library, a program linked against it, and a Makefile with
/// dependency files, so that building it leaves a real build tree
/// (.o, .d, .a, an executable) behind.
public enum CProject {
    public static func write(to dir: String, modules: Int = 12) throws {
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
        var header = "#ifndef PROJECT_H\n#define PROJECT_H\n#include <stdint.h>\n"
        for i in 0..<modules { header += "uint64_t module_\(i)(uint64_t x);\n" }
        header += "#endif\n"
        try header.write(toFile: dir + "/src/project.h", atomically: true, encoding: .utf8)
        for i in 0..<modules {
            let body = """
                #include "project.h"
                #include <string.h>
                static const char table_\(i)[] = "module \(i) lookup table with some text to compress";
                uint64_t module_\(i)(uint64_t x) {
                    uint64_t h = 1469598103934665603ULL ^ \(i)u;
                    for (size_t k = 0; k < strlen(table_\(i)); k++) { h = (h ^ (uint8_t)table_\(i)[k]) * 1099511628211ULL; }
                    return h ^ (x * \(i + 3)u);
                }

                """
            try body.write(toFile: dir + "/src/module_\(i).c", atomically: true, encoding: .utf8)
        }
        var main = "#include <stdio.h>\n#include \"project.h\"\nint main(void) {\n    uint64_t acc = 0;\n"
        for i in 0..<modules { main += "    acc += module_\(i)(acc);\n" }
        main += "    printf(\"%llu\\n\", (unsigned long long)acc);\n    return 0;\n}\n"
        try main.write(toFile: dir + "/src/main.c", atomically: true, encoding: .utf8)
        let makefile = """
            CC ?= cc
            CFLAGS ?= -O2 -g
            SRCS := $(wildcard src/module_*.c)
            OBJS := $(patsubst src/%.c,build/%.o,$(SRCS))

            all: build/program

            build/%.o: src/%.c | build
            \t$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

            build/libproject.a: $(OBJS)
            \tar rcs $@ $^

            build/program: build/main.o build/libproject.a
            \t$(CC) $(CFLAGS) -o $@ $^

            build:
            \tmkdir -p build

            -include $(OBJS:.o=.d) build/main.d

            """
        try makefile.write(toFile: dir + "/Makefile", atomically: true, encoding: .utf8)
    }
}
