/* bc_tsan_threads: C11 <threads.h> over pthreads, linked into the
 * ThreadSanitizer build only (-DBC_TSAN=ON).
 *
 * Why: librdkafka starts its threads with C11 thrd_create, which glibc
 * (2.34 and later) implements by calling its pthread internals directly.
 * ThreadSanitizer intercepts pthread_create, not thrd_create, so a
 * librdkafka thread runs without TSan's per-thread state and the first
 * malloc on it crashes (seen with gcc 12 and clang 14). Defined in the
 * executable, these functions take the place of glibc's for every library
 * (the dynamic linker looks in the executable first) and go through the
 * intercepted pthread calls, so TSan sees the threads and their locks.
 * glibc's mtx_t, cnd_t and thrd_t share the layout of the pthread types
 * (glibc's own implementation casts between them). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>
#include <time.h>

static int thrd_code(int e)
{
    switch (e) {
    case 0: return thrd_success;
    case ENOMEM: return thrd_nomem;
    case EBUSY: return thrd_busy;
    case ETIMEDOUT: return thrd_timedout;
    default: return thrd_error;
    }
}

struct start { thrd_start_t fn; void *arg; };

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct start *s = malloc(sizeof *s);
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int e = pthread_create((pthread_t *)thr, NULL, trampoline, s);
    if (e)
        free(s);
    return thrd_code(e);
}

int thrd_join(thrd_t thr, int *res)
{
    void *v;
    int e = pthread_join((pthread_t)thr, &v);
    if (!e && res)
        *res = (int)(intptr_t)v;
    return thrd_code(e);
}

int thrd_detach(thrd_t thr) { return thrd_code(pthread_detach((pthread_t)thr)); }
thrd_t thrd_current(void) { return (thrd_t)pthread_self(); }
int thrd_equal(thrd_t a, thrd_t b) { return pthread_equal((pthread_t)a, (pthread_t)b); }
void thrd_yield(void) { sched_yield(); }
_Noreturn void thrd_exit(int res) { pthread_exit((void *)(intptr_t)res); }

int thrd_sleep(const struct timespec *d, struct timespec *rem)
{
    if (nanosleep(d, rem) == 0)
        return 0;
    return errno == EINTR ? -1 : -2;
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int e = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return thrd_code(e);
}

int mtx_lock(mtx_t *m) { return thrd_code(pthread_mutex_lock((pthread_mutex_t *)m)); }
int mtx_trylock(mtx_t *m) { return thrd_code(pthread_mutex_trylock((pthread_mutex_t *)m)); }
int mtx_unlock(mtx_t *m) { return thrd_code(pthread_mutex_unlock((pthread_mutex_t *)m)); }
void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict at)
{
    return thrd_code(pthread_mutex_timedlock((pthread_mutex_t *)m, at));
}

int cnd_init(cnd_t *c) { return thrd_code(pthread_cond_init((pthread_cond_t *)c, NULL)); }
int cnd_signal(cnd_t *c) { return thrd_code(pthread_cond_signal((pthread_cond_t *)c)); }
int cnd_broadcast(cnd_t *c) { return thrd_code(pthread_cond_broadcast((pthread_cond_t *)c)); }
void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return thrd_code(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict at)
{
    return thrd_code(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, at));
}
