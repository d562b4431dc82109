/* Unit tests for the pure part of kernels run by systemd
 * (src/serve/supervisor/unit.c): unit names from patterns, `systemctl
 * show` output as systemd 252 (Debian 12) prints it, systemd's states as
 * the supervisor's, and exits worded as the supervisor words them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "serve/supervisor/unit.h"

static void test_names(void **state)
{
	(void)state;
	char out[GRACE_UNIT_MAX];
	assert_int_equal(sup_unit_name("grace-kernel@%p.service", "audit", 8130, out, sizeof out), 0);
	assert_string_equal(out, "grace-kernel@8130.service");
	assert_int_equal(sup_unit_name("grace-%n.service", "audit", 8130, out, sizeof out), 0);
	assert_string_equal(out, "grace-audit.service");
	assert_int_equal(sup_unit_name("a%%p", "k", 1, out, sizeof out), 0); /* '%' then %p */
	assert_string_equal(out, "a%1");
	char tiny[8];
	assert_int_equal(sup_unit_name("grace-kernel@%p.service", "a", 8130, tiny, sizeof tiny), -1);
	assert_int_equal(sup_unit_name("1234567", "a", 1, tiny, sizeof tiny), 0);
	assert_int_equal(sup_unit_name("12345678", "a", 1, tiny, sizeof tiny), -1);
}

/* Two units as `systemctl show -p SUP_UNIT_PROPS A B` prints them: in
 * systemd's own property order, not the order asked. */
static const char show[] = "MainPID=4242\n"
			   "ExecMainStartTimestampMonotonic=123456789\n"
			   "ExecMainCode=0\n"
			   "ExecMainStatus=0\n"
			   "Id=grace-kernel@8130.service\n"
			   "LoadState=loaded\n"
			   "ActiveState=active\n"
			   "SubState=running\n"
			   "Result=success\n"
			   "NRestarts=2\n"
			   "\n"
			   "Id=grace-kernel@8130.socket\n"
			   "LoadState=loaded\n"
			   "ActiveState=active\n"
			   "SubState=listening\n"
			   "Result=success\n";

static void test_parse(void **state)
{
	(void)state;
	sup_unit_status st[4];
	assert_int_equal(sup_unit_parse_show(show, strlen(show), st, 4), 2);
	assert_string_equal(st[0].id, "grace-kernel@8130.service");
	assert_int_equal(st[0].main_pid, 4242);
	assert_int_equal(st[0].n_restarts, 2);
	assert_int_equal(st[0].exec_start_mono_us, 123456789);
	assert_string_equal(st[0].sub, "running");
	assert_string_equal(st[1].id, "grace-kernel@8130.socket");
	assert_string_equal(st[1].sub, "listening");
	assert_int_equal(st[1].main_pid, 0);
	/* At most `max`: the rest is read past, not written. */
	assert_int_equal(sup_unit_parse_show(show, strlen(show), st, 1), 1);
	assert_string_equal(st[0].id, "grace-kernel@8130.service");
	/* Without the last newline, and with blank lines doubled. */
	const char two[] = "Id=a.service\nLoadState=loaded\n\n\nId=b.service\nLoadState=not-found";
	assert_int_equal(sup_unit_parse_show(two, strlen(two), st, 4), 2);
	assert_string_equal(st[1].load, "not-found");
	/* A block without an Id cannot be matched to a kernel: refused. */
	const char anon[] = "Id=a.service\n\nActiveState=active\n";
	assert_int_equal(sup_unit_parse_show(anon, strlen(anon), st, 4), -1);
	/* Numbers out of range or not numbers are left out, not wrapped. */
	const char bad[] = "Id=a.service\nMainPID=99999999999\nNRestarts=-1\nExecMainCode=x\n";
	assert_int_equal(sup_unit_parse_show(bad, strlen(bad), st, 4), 1);
	assert_int_equal(st[0].main_pid, 0);
	assert_int_equal(st[0].n_restarts, 0);
	assert_int_equal(st[0].exec_code, 0);
	assert_int_equal(sup_unit_parse_show("", 0, st, 4), 0);
}

static enum sup_state state_of(const char *load, const char *active, const char *sub)
{
	sup_unit_status st = { 0 };
	strcpy(st.load, load);
	strcpy(st.active, active);
	strcpy(st.sub, sub);
	return sup_unit_state(&st);
}

static void test_states(void **state)
{
	(void)state;
	assert_int_equal(state_of("loaded", "active", "running"), SUP_READY);
	assert_int_equal(state_of("loaded", "reloading", "reload"), SUP_READY);
	assert_int_equal(state_of("loaded", "activating", "start"), SUP_STARTING);
	assert_int_equal(state_of("loaded", "activating", "auto-restart"), SUP_RESTARTING);
	assert_int_equal(state_of("loaded", "deactivating", "stop-sigterm"), SUP_STOPPING);
	assert_int_equal(state_of("loaded", "inactive", "dead"), SUP_STOPPED);
	assert_int_equal(state_of("loaded", "failed", "failed"), SUP_FAILED);
	assert_int_equal(state_of("loaded", "maintenance", "dead"), SUP_STOPPED);
	/* What systemd cannot load cannot run, whatever it says besides. */
	assert_int_equal(state_of("not-found", "inactive", "dead"), SUP_FAILED);
	assert_int_equal(state_of("masked", "inactive", "dead"), SUP_FAILED);
	/* A state this table does not know is not taken for a healthy one. */
	assert_int_equal(state_of("loaded", "refreshing", "x"), SUP_FAILED);
}

static void test_exits(void **state)
{
	(void)state;
	sup_unit_status st = { 0 };
	char out[128];
	sup_unit_describe_exit(&st, out, sizeof out);
	assert_string_equal(out, "");
	st.exec_code = CLD_EXITED;
	st.exec_status = 3;
	sup_unit_describe_exit(&st, out, sizeof out);
	assert_string_equal(out, "exit 3");
	st.exec_code = CLD_KILLED;
	st.exec_status = SIGKILL;
	sup_unit_describe_exit(&st, out, sizeof out);
	assert_string_equal(out, "signal 9 (Killed)");
	st.exec_code = CLD_DUMPED;
	st.exec_status = SIGSEGV;
	sup_unit_describe_exit(&st, out, sizeof out);
	assert_string_equal(out, "signal 11 (Segmentation fault), core dumped");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_exits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
