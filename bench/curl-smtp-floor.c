/*
 * The speed limit of libcurl's SMTP on this machine, for scripts/bench: the same message sent
 * MESSAGES times over CONNECTIONS reused connections, split over THREADS threads with one multi
 * handle each (as Fanout's transfer pool does), with no database and no rendering.
 *
 *   curl-smtp-floor HOST PORT CONNECTIONS THREADS MESSAGES SIZE
 *
 * Exits 1 if any message was not accepted.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char url[256];
static char *message;
static size_t message_size;

struct upload {
    CURL *easy;
    size_t offset;
};

struct worker {
    int connections;
    int messages;
    int failures;
};

static size_t read_message(char *buffer, size_t size, size_t count, void *userdata)
{
    struct upload *upload = userdata;
    size_t room = size * count;
    size_t left = message_size - upload->offset;
    size_t n = left < room ? left : room;
    memcpy(buffer, message + upload->offset, n);
    upload->offset += n;
    return n;
}

static void *run(void *argument)
{
    struct worker *worker = argument;
    struct curl_slist *recipients = curl_slist_append(NULL, "<r@example.test>");
    struct upload *uploads = calloc((size_t)worker->connections, sizeof *uploads);
    CURLM *multi = curl_multi_init();
    int started = 0, finished = 0;

    for (int i = 0; i < worker->connections && started < worker->messages; i++, started++) {
        CURL *easy = curl_easy_init();
        uploads[i].easy = easy;
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_MAIL_FROM, "<bench@example.test>");
        curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, recipients);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_message);
        curl_easy_setopt(easy, CURLOPT_READDATA, &uploads[i]);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message_size);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, &uploads[i]);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(multi, easy);
    }
    while (finished < worker->messages) {
        int running, queued;
        curl_multi_perform(multi, &running);
        CURLMsg *done;
        while ((done = curl_multi_info_read(multi, &queued))) {
            if (done->msg != CURLMSG_DONE)
                continue;
            CURL *easy = done->easy_handle;
            struct upload *upload;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&upload);
            if (done->data.result != CURLE_OK)
                worker->failures++;
            finished++;
            curl_multi_remove_handle(multi, easy);
            if (started < worker->messages) {
                upload->offset = 0;
                curl_multi_add_handle(multi, easy);
                started++;
            }
        }
        if (finished < worker->messages)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < worker->connections; i++) {
        if (uploads[i].easy) {
            curl_easy_cleanup(uploads[i].easy);
        }
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(recipients);
    free(uploads);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS THREADS MESSAGES SIZE\n", argv[0]);
        return 2;
    }
    int connections = atoi(argv[3]), threads = atoi(argv[4]), messages = atoi(argv[5]);
    message_size = (size_t)atol(argv[6]);
    if (connections < 1 || threads < 1 || threads > connections || messages < 1 || message_size < 2) {
        fprintf(stderr, "curl-smtp-floor: bad arguments\n");
        return 2;
    }
    snprintf(url, sizeof url, "smtp://%s:%s", argv[1], argv[2]);
    /* Lines of 70 characters and CRLF, like a plain text body. */
    message = malloc(message_size);
    for (size_t i = 0; i < message_size; i++)
        message[i] = (i % 72 == 70) ? '\r' : (i % 72 == 71) ? '\n' : 'a';
    message[message_size - 2] = '\r';
    message[message_size - 1] = '\n';

    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    for (int t = 0; t < threads; t++) {
        workers[t].connections = connections / threads + (t < connections % threads);
        workers[t].messages = messages / threads + (t < messages % threads);
        pthread_create(&ids[t], NULL, run, &workers[t]);
    }
    int failures = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        failures += workers[t].failures;
    }
    curl_global_cleanup();
    if (failures) {
        fprintf(stderr, "curl-smtp-floor: %d of %d messages failed\n", failures, messages);
        return 1;
    }
    return 0;
}
