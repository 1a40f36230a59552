/*
 * The SMS module's insides, shared by its files:
 *   sms_logic.c  pure decisions (SMS_ON, the template, Exotel's answers) and the state diagram
 *   sms.c        settings, the store and its bus handler, start and stop
 *   sms_send.c   the sender thread (claim, DND check, Sms/send, record) and the delivery
 *                callback route POST /exotel/sms/callback
 * Store jobs run on the store's writer thread inside a transaction.
 */
#ifndef LEADBUS_SMS_INTERNAL_H
#define LEADBUS_SMS_INTERNAL_H

#include "app.h"
#include "bus_sub.h"
#include "call_window.h"
#include "callback_guard.h"
#include "retention.h"
#include "sms_logic.h"
#include "store.h"
#include "wake.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sms {
    struct store *store;
    struct bus_sub *sub;
    struct retention *retention;   /* LEAD_RETENTION_DAYS: the leads' names and numbers */
    struct retention_rule keep[1]; /* its rule */
    struct sms_on on;
    char tmpl[2048], sender[64], dlt_entity[64], dlt_template[64], sms_type[32];
    char agent_fallback[64];
    char base[APP_URL_MAX], sid[64], key[128], token[128]; /* Exotel account (no logging) */
    char public_base[APP_URL_MAX];
    long timeout_ms;
    struct call_window window;
    unsigned char cb_key[CALLBACK_KEY_BYTES]; /* delivery callback tokens (HMAC key) */
    struct wake wake;
    pthread_t thread;
    bool started;
    CURL *curl;
    atomic_int unknown; /* sends whose outcome is unknown since start (an ERROR each) */
};

/* The sender thread (sms_send.c). */
void *sms_sender_main(void *arg);
/* POST /exotel/sms/callback?lead=&token= (sms_send.c). */
void sms_post_callback(struct http_req *req, void *arg);
/* At start: a `sending` row was cut by a crash; it becomes `unknown` (sms_send.c). */
int sms_recover(sqlite3 *db, void *arg);

#endif
