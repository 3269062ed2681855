/*
 * proxy/http.c: the token check and the JSON replies every route of the
 * HTTP endpoint uses (see http.h). Owns no state. Does not own the
 * endpoint, its limits or its routing (admin.c), nor any route's content.
 */
#include "proxy/http.h"

#include "proxy/server.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

bool
proxy_http_authorized(struct proxy_server *server, struct evhttp_request *req)
{
    const char *token = server->conf->http_token;
    const char *header;
    size_t a, b;

    if (!token || !token[0])
        return true;
    header = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!header || strncmp(header, "Bearer ", 7) != 0)
        return false;
    header += 7;
    /* Compare in time independent of where the strings differ. */
    a = strlen(header);
    b = strlen(token);
    {
        unsigned char diff = (unsigned char)(a != b);

        for (size_t i = 0; i < a && i < b; i++)
            diff |= (unsigned char)(header[i] ^ token[i]);
        return diff == 0;
    }
}

void
proxy_http_json_headers(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
}

void
proxy_http_reply_json(struct evhttp_request *req, int code, const char *reason,
                      struct evbuffer *body)
{
    proxy_http_json_headers(req);
    evhttp_send_reply(req, code, reason, body);
}

void
proxy_http_send_bson(struct evhttp_request *req, int code, const char *reason, const bson_t *doc)
{
    struct evbuffer *body = evbuffer_new();
    size_t n;
    char *json = bson_as_relaxed_extended_json(doc, &n);

    if (json)
        evbuffer_add(body, json, n);
    else
        evbuffer_add_printf(body, "{\"error\": \"the reply could not be written\"}");
    evbuffer_add(body, "\n", 1);
    bson_free(json);
    proxy_http_reply_json(req, json ? code : 500, json ? reason : "Internal Server Error", body);
    evbuffer_free(body);
}
