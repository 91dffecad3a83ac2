/* A Modbus TCP server on libmodbus (an independent stack: not pymodbus) for the driver
 * tests, in the manner of libmodbus's own unit-test-server.
 * Usage: modbus_server PORT   -- prints "@@ ready PORT" once it listens on 127.0.0.1.
 * Map: coils 0..31, discrete inputs 0..31, holding registers 0..199, input registers
 * 0..49; anything else is answered with exception 2 (illegal data address) by libmodbus.
 * stdin lines change the map, each answered with one "@@ " line:
 *   hr ADDR V [V...]   ir ADDR V [V...]   co ADDR 0|1   di ADDR 0|1   get ADDR
 */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

static void command(modbus_mapping_t *map, char *line) {
    char *save = NULL;
    char *what = strtok_r(line, " \t", &save);
    char *addr_s = strtok_r(NULL, " \t", &save);
    if (what == NULL || addr_s == NULL) {
        printf("@@ error usage\n");
        return;
    }
    long addr = strtol(addr_s, NULL, 10);
    int n = 0;
    char *v;
    if (strcmp(what, "get") == 0) {
        if (addr < 0 || addr >= map->nb_registers) {
            printf("@@ error address\n");
            return;
        }
        printf("@@ value %u\n", map->tab_registers[addr]);
        return;
    }
    while ((v = strtok_r(NULL, " \t", &save)) != NULL) {
        long x = strtol(v, NULL, 0);
        long a = addr + n;
        if (strcmp(what, "hr") == 0 && a < map->nb_registers) {
            map->tab_registers[a] = (uint16_t)x;
        } else if (strcmp(what, "ir") == 0 && a < map->nb_input_registers) {
            map->tab_input_registers[a] = (uint16_t)x;
        } else if (strcmp(what, "co") == 0 && a < map->nb_bits) {
            map->tab_bits[a] = x ? 1 : 0;
        } else if (strcmp(what, "di") == 0 && a < map->nb_input_bits) {
            map->tab_input_bits[a] = x ? 1 : 0;
        } else {
            printf("@@ error address\n");
            return;
        }
        n++;
    }
    printf("@@ ok %d\n", n);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *map = modbus_mapping_new_start_address(0, 32, 0, 32, 0, 200, 0, 50);
    if (ctx == NULL || map == NULL) {
        fprintf(stderr, "cannot allocate: %s\n", modbus_strerror(errno));
        return 1;
    }
    int server = modbus_tcp_listen(ctx, 8);
    if (server < 0) {
        fprintf(stderr, "cannot listen on %d: %s\n", port, modbus_strerror(errno));
        return 1;
    }
    printf("@@ ready %d\n", port);

    fd_set refset;
    FD_ZERO(&refset);
    FD_SET(server, &refset);
    FD_SET(STDIN_FILENO, &refset);
    int fdmax = server > STDIN_FILENO ? server : STDIN_FILENO;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    char inbuf[4096];
    size_t inlen = 0;
    for (;;) {
        fd_set rdset = refset;
        if (select(fdmax + 1, &rdset, NULL, NULL, NULL) == -1) {
            if (errno == EINTR) continue;
            perror("select");
            return 1;
        }
        for (int fd = 0; fd <= fdmax; fd++) {
            if (!FD_ISSET(fd, &rdset)) continue;
            if (fd == server) {
                int client = modbus_tcp_accept(ctx, &server);
                if (client >= 0) {
                    FD_SET(client, &refset);
                    if (client > fdmax) fdmax = client;
                }
            } else if (fd == STDIN_FILENO) {
                ssize_t got = read(STDIN_FILENO, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
                if (got <= 0) {  /* the test closed our stdin: stop */
                    modbus_mapping_free(map);
                    modbus_free(ctx);
                    return 0;
                }
                inlen += (size_t)got;
                inbuf[inlen] = '\0';
                char *nl;
                while ((nl = strchr(inbuf, '\n')) != NULL) {
                    *nl = '\0';
                    command(map, inbuf);
                    size_t used = (size_t)(nl - inbuf) + 1;
                    memmove(inbuf, nl + 1, inlen - used + 1);
                    inlen -= used;
                }
            } else {
                modbus_set_socket(ctx, fd);
                int rc = modbus_receive(ctx, query);
                if (rc > 0) {
                    modbus_reply(ctx, query, rc, map);
                } else if (rc == -1) {
                    close(fd);
                    FD_CLR(fd, &refset);
                }
            }
        }
    }
}
