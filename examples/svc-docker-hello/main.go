// Command svc-docker-hello is svc-hello as a docker service: a plain HTTP
// server on the port in $PORT (the provider sets it, 8080 by default)
// answering every request with "$GREETING, <path>!". GET /crash makes it
// exit, to show a provider starting the container again.
package main

import (
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		who := strings.TrimPrefix(r.URL.Path, "/")
		if who == "crash" {
			log.Fatal("asked to crash")
		}
		if who == "" {
			who = "world"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(greeting + ", " + who + "!\n"))
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
