/*
 * qemu-hspt: boot a tiny -M virt guest with hspt=on and with hspt off;
 * both must print "HSPT OK", and with hspt=on "info hspt" and
 * x-query-hspt must show that the direct path was used.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"

/*
 * The guest, loaded with -kernel at 0x40010000: identity-map the address
 * space with 1 MiB sections plus an alias at 0x80000000, write and sum
 * 256 KiB of RAM, read it through the alias, then point the alias at
 * another section with TLBIMVA: a shadow page that survived the TLBI would
 * return the old data. Then the same with a 4 KiB page at 0x80100000,
 * switched between two pages by TLBIMVA and by TLBIALL (HSPT revalidates
 * rather than drops pages there), and a store through it. Built with
 *   arm-linux-gnueabihf-as -march=armv7-a -o blob.o blob.S
 *   arm-linux-gnueabihf-objcopy -O binary blob.o blob.bin
 * from:
 *
 *     .arm
 *     .text
 *     .global _start
 * _start:
 *     ldr r4, =0x40200000         @ L1 table: identity 1 MiB sections
 *     add r11, r4, #0x2000        @ its entry for VA 0x80000000
 *     mov r5, #0
 *     ldr r6, =0xc02              @ AP=full, section
 * 1:  orr r7, r6, r5, lsl #20
 *     str r7, [r4, r5, lsl #2]
 *     add r5, r5, #1
 *     cmp r5, #4096
 *     bne 1b
 *     ldr r7, =0x40300c02         @ VA 0x80000000 -> PA 0x40300000
 *     str r7, [r11]
 *     mcr p15, 0, r4, c2, c0, 0   @ TTBR0
 *     mov r0, #0
 *     mcr p15, 0, r0, c2, c0, 2   @ TTBCR
 *     mov r0, #1
 *     mcr p15, 0, r0, c3, c0, 0   @ DACR: domain 0 client
 *     mcr p15, 0, r0, c8, c7, 0   @ TLBIALL
 *     mrc p15, 0, r0, c1, c0, 0
 *     orr r0, r0, #1
 *     mcr p15, 0, r0, c1, c0, 0   @ SCTLR.M
 *     isb
 *     ldr r1, =0x40300000         @ 256 KiB of w[i] = i * 0x9e3779b1
 *     ldr r2, =0x10000
 *     ldr r3, =0x9e3779b1
 *     mov r5, #0
 * 2:  mul r7, r5, r3
 *     str r7, [r1, r5, lsl #2]
 *     add r5, r5, #1
 *     cmp r5, r2
 *     bne 2b
 *     mov r5, #0
 *     mov r8, #0
 * 3:  ldr r7, [r1, r5, lsl #2]
 *     add r8, r8, r7
 *     add r5, r5, #1
 *     cmp r5, r2
 *     bne 3b
 *     ldr r9, =0x7fff8000         @ sum of 0..0xffff
 *     mul r10, r3, r9
 *     cmp r8, r10
 *     bne fail
 *     ldr r0, =0x80000000         @ the alias sees w[1]
 *     ldr r7, [r0, #4]
 *     cmp r7, r3
 *     bne fail
 *     ldr r1, =0x40400000         @ remap the alias to a marker page
 *     ldr r7, =0x12345678
 *     str r7, [r1, #4]
 *     ldr r7, =0x40400c02
 *     str r7, [r11]
 *     dsb
 *     mcr p15, 0, r0, c8, c7, 1   @ TLBIMVA 0x80000000
 *     dsb
 *     isb
 *     ldr r7, [r0, #4]
 *     ldr r6, =0x12345678
 *     cmp r7, r6
 *     bne fail
 *     ldr r4, =0x40204000         @ L2 table: VA 0x80100000 -> 4 KiB pages
 *     mov r5, #0
 *     mov r6, #0
 * 6:  str r6, [r4, r5, lsl #2]
 *     add r5, r5, #1
 *     cmp r5, #256
 *     bne 6b
 *     ldr r7, =0x40204001         @ coarse table, domain 0
 *     str r7, [r11, #4]
 *     ldr r1, =0x40500000         @ marker A in page A, marker B in page B
 *     ldr r8, =0x11111111
 *     str r8, [r1, #4]
 *     ldr r1, =0x40600000
 *     ldr r9, =0x22222222
 *     str r9, [r1, #4]
 *     ldr r7, =0x40500032         @ small page A, AP=full
 *     str r7, [r4]
 *     dsb
 *     mcr p15, 0, r0, c8, c7, 0   @ TLBIALL
 *     dsb
 *     isb
 *     ldr r0, =0x80100000
 *     ldr r7, [r0, #4]            @ sees A
 *     cmp r7, r8
 *     bne fail
 *     ldr r7, =0x40600032         @ page flush: now B
 *     str r7, [r4]
 *     dsb
 *     mcr p15, 0, r0, c8, c7, 1   @ TLBIMVA 0x80100000
 *     dsb
 *     isb
 *     ldr r7, [r0, #4]
 *     cmp r7, r9
 *     bne fail
 *     ldr r7, =0x40500032         @ TLBIALL: back to A
 *     str r7, [r4]
 *     dsb
 *     mcr p15, 0, r0, c8, c7, 0   @ TLBIALL
 *     dsb
 *     isb
 *     ldr r7, [r0, #4]
 *     cmp r7, r8
 *     bne fail
 *     ldr r7, =0x33333333         @ and a store lands in A
 *     str r7, [r0, #8]
 *     ldr r1, =0x40500000
 *     ldr r6, [r1, #8]
 *     cmp r6, r7
 *     bne fail
 *     adr r0, ok_msg
 *     b print
 * fail:
 *     adr r0, bad_msg
 * print:
 *     ldr r1, =0x09000000         @ PL011 data register
 * 4:  ldrb r2, [r0], #1
 *     cmp r2, #0
 *     beq 5f
 *     str r2, [r1]
 *     b 4b
 * 5:  wfi
 *     b 5b
 * ok_msg:
 *     .asciz "HSPT OK\n"
 * bad_msg:
 *     .asciz "HSPT BAD\n"
 *     .balign 4
 *     .ltorg
 */
static const uint32_t guest_code[] = {
    0xe59f41e4, 0xe284ba02, 0xe3a05000, 0xe59f61dc,
    0xe1867a05, 0xe7847105, 0xe2855001, 0xe3550a01,
    0x1afffffa, 0xe59f71c8, 0xe58b7000, 0xee024f10,
    0xe3a00000, 0xee020f50, 0xe3a00001, 0xee030f10,
    0xee080f17, 0xee110f10, 0xe3800001, 0xee010f10,
    0xf57ff06f, 0xe59f119c, 0xe3a02801, 0xe59f3198,
    0xe3a05000, 0xe0070395, 0xe7817105, 0xe2855001,
    0xe1550002, 0x1afffffa, 0xe3a05000, 0xe3a08000,
    0xe7917105, 0xe0888007, 0xe2855001, 0xe1550002,
    0x1afffffa, 0xe59f9164, 0xe00a0993, 0xe158000a,
    0x1a000043, 0xe3a00102, 0xe5907004, 0xe1570003,
    0x1a00003f, 0xe59f1148, 0xe59f7148, 0xe5817004,
    0xe59f7144, 0xe58b7000, 0xf57ff04f, 0xee080f37,
    0xf57ff04f, 0xf57ff06f, 0xe5907004, 0xe59f6124,
    0xe1570006, 0x1a000032, 0xe59f4120, 0xe3a05000,
    0xe3a06000, 0xe7846105, 0xe2855001, 0xe3550c01,
    0x1afffffb, 0xe59f7108, 0xe58b7004, 0xe59f1104,
    0xe59f8104, 0xe5818004, 0xe59f1100, 0xe59f9100,
    0xe5819004, 0xe59f70fc, 0xe5847000, 0xf57ff04f,
    0xee080f17, 0xf57ff04f, 0xf57ff06f, 0xe59f00e8,
    0xe5907004, 0xe1570008, 0x1a000019, 0xe59f70dc,
    0xe5847000, 0xf57ff04f, 0xee080f37, 0xf57ff04f,
    0xf57ff06f, 0xe5907004, 0xe1570009, 0x1a000010,
    0xe59f70b0, 0xe5847000, 0xf57ff04f, 0xee080f17,
    0xf57ff04f, 0xf57ff06f, 0xe5907004, 0xe1570008,
    0x1a000007, 0xe59f7098, 0xe5807008, 0xe59f1074,
    0xe5916008, 0xe1560007, 0x1a000001, 0xe28f0024,
    0xea000000, 0xe28f0025, 0xe3a01409, 0xe4d02001,
    0xe3520000, 0x0a000001, 0xe5812000, 0xeafffffa,
    0xe320f003, 0xeafffffd, 0x54505348, 0x0a4b4f20,
    0x50534800, 0x41422054, 0x00000a44, 0x40200000,
    0x00000c02, 0x40300c02, 0x40300000, 0x9e3779b1,
    0x7fff8000, 0x40400000, 0x12345678, 0x40400c02,
    0x40204000, 0x40204001, 0x40500000, 0x11111111,
    0x40600000, 0x22222222, 0x40500032, 0x80100000,
    0x40600032, 0x33333333,
};

static char *write_tmp_file(const void *data, size_t len)
{
    char *path = NULL;
    int fd = g_file_open_tmp("hspt-boot-test-XXXXXX", &path, NULL);

    g_assert(fd != -1);
    g_assert(write(fd, data, len) == len);
    close(fd);
    return path;
}

/* Wait (up to a minute) for the guest's verdict on the serial port. */
static void wait_for_verdict(const char *serial_path)
{
    g_autofree char *text = NULL;

    for (int i = 0; i < 6000; i++) {
        g_free(text);
        text = NULL;
        g_assert(g_file_get_contents(serial_path, &text, NULL, NULL));
        /* The verdict is one line; the file may hold part of it. */
        if (strchr(text, '\n')) {
            break;
        }
        g_usleep(10000);
    }
    g_assert_cmpstr(text, ==, "HSPT OK\n");
}

static QTestState *boot(const char *accel, const char *extra)
{
    g_autofree char *kernel = write_tmp_file(guest_code, sizeof(guest_code));
    g_autofree char *serial = write_tmp_file("", 0);
    QTestState *qts;

    qts = qtest_initf("-M virt -no-shutdown -kernel %s "
                      "-chardev file,id=serial0,path=%s "
                      "-serial chardev:serial0 -accel %s %s",
                      kernel, serial, accel, extra);
    unlink(kernel);
    wait_for_verdict(serial);
    unlink(serial);
    return qts;
}

static void test_hspt_off(void)
{
    QTestState *qts = boot("tcg", "");
    g_autofree char *info = qtest_hmp(qts, "info hspt");

    g_assert_nonnull(strstr(info, "HSPT off"));
    qtest_quit(qts);
}

static void test_hspt_on(void)
{
    QTestState *qts = boot("tcg,hspt=on", "");
    g_autofree char *info = qtest_hmp(qts, "info hspt");
    const char *fills = strstr(info, "\nfills: ");
    unsigned pages, large;
    QDict *resp;

    g_assert_nonnull(strstr(info, "HSPT on: organisation group"));
    g_assert_nonnull(fills);
    g_assert_cmpint(sscanf(fills, "\nfills: %u pages, %u large",
                           &pages, &large), ==, 2);
    g_assert_cmpuint(pages + large, >, 0);

    resp = qtest_qmp(qts, "{ 'execute': 'x-query-hspt' }");
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(resp, "return"),
                                          "human-readable-text"),
                            "HSPT on: organisation group"));
    qobject_unref(resp);
    qtest_quit(qts);
}

/* The trace events of accel/tcg/hspt are built and fire. */
static void test_hspt_trace(void)
{
    g_autofree char *log = write_tmp_file("", 0);
    g_autofree char *args = g_strdup_printf("-trace hspt_fill -D %s", log);
    g_autofree char *text = NULL;
    QTestState *qts = boot("tcg,hspt=on", args);

    qtest_quit(qts);
    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    unlink(log);
    g_assert_nonnull(strstr(text, "hspt_fill "));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (!qtest_has_accel("tcg") || !qtest_has_machine("virt")) {
        g_test_skip("needs TCG and -M virt");
        return 0;
    }
    qtest_add_func("/hspt/boot/hspt-off", test_hspt_off);
    qtest_add_func("/hspt/boot/hspt-on", test_hspt_on);
    qtest_add_func("/hspt/boot/trace", test_hspt_trace);
    return g_test_run();
}
