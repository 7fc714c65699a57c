// Command svchostile is a hostile docker service for the attack tests: an
// HTTP server on $PORT whose every answer is a redirect to $REDIRECT (a
// provider that follows it fetches that address for the container).
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	to := os.Getenv("REDIRECT")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to, http.StatusFound)
	})
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
}
